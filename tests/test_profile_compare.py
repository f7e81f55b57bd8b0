"""--compare A B: the per-layer change between two checkpoints, against NumPy."""

import hashlib
import json

import numpy as np
import pytest

from fastpenalty.__main__ import main
from fastpenalty.profile.compare import change

L1, L2, T = 0.002, 0.03, 0.05


def run_profile(capsys, *args):
    code = main(["profile", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(7)
    a = {"fc.weight": rng.standard_normal((31, 17)).astype(np.float32) * 0.1,
         "fc.bias": rng.standard_normal(31).astype(np.float32), "old.weight": np.ones((2, 3), np.float32)}
    b = {"fc.weight": a["fc.weight"] * np.float32(0.5), "fc.bias": a["fc.bias"],
         "new.weight": rng.standard_normal((5, 5)).astype(np.float64)}
    np.savez(tmp_path / "a.npz", **a)
    np.savez(tmp_path / "b.npz", **b)
    return tmp_path / "a.npz", tmp_path / "b.npz", a, b


def _facts(w):
    w = np.asarray(w, np.float64)
    s1, s2 = np.abs(w).sum(), np.square(w).sum()
    return s1, np.sqrt(s2 / w.size), np.mean(np.abs(w) <= T), L1 * s1 + L2 * s2


def test_compare_matches_numpy(pair, tmp_path, capsys):
    pa, pb, a, b = pair
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (pa, pb)]
    js = tmp_path / "c.json"
    code, out, err = run_profile(capsys, "--compare", pa, pb, "--l1", L1, "--l2", L2,
                                 "--zero-threshold", T, "--json", js)
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(js.read_text())["layers"]}
    assert [r for r in rows] == ["fc.weight", "fc.bias", "old.weight", "new.weight"]
    assert {n: r["in"] for n, r in rows.items()} == {"fc.weight": "both", "fc.bias": "both",
                                                     "old.weight": "A only", "new.weight": "B only"}
    for name in ("fc.weight", "fc.bias"):
        (s1a, rmsa, nza, pa_), (s1b, rmsb, nzb, pb_) = _facts(a[name]), _facts(b[name])
        r = rows[name]
        assert r["l1_sum_a"] == pytest.approx(s1a, rel=1e-5) and r["l1_sum_b"] == pytest.approx(s1b, rel=1e-5)
        assert r["rms_a"] == pytest.approx(rmsa, rel=1e-5) and r["rms_b"] == pytest.approx(rmsb, rel=1e-5)
        assert r["near_zero_share_a"] == pytest.approx(nza) and r["near_zero_share_b"] == pytest.approx(nzb)
        assert r["penalty_a"] == pytest.approx(pa_, rel=1e-5) and r["penalty_b"] == pytest.approx(pb_, rel=1e-5)
        assert r["penalty_change"] == pytest.approx((pb_ - pa_) / pa_, rel=1e-4)
    assert rows["fc.weight"]["l1_sum_change"] == pytest.approx(-0.5, rel=1e-6)
    assert rows["fc.weight"]["rms_change"] == pytest.approx(-0.5, rel=1e-6)
    assert rows["fc.bias"]["excluded"] and rows["fc.bias"]["l1_sum_change"] == pytest.approx(0, abs=1e-7)
    assert rows["old.weight"]["l1_sum_b"] is None and rows["new.weight"]["l1_sum_a"] is None
    assert "-50.0%" in out and "old.weight (A only)" in out and "new.weight (B only)" in out
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in (pa, pb)] == digests


def test_compare_refuses_to_write_onto_an_input(pair, capsys):
    pa, pb, _, _ = pair
    before = pb.read_bytes()
    code, _, err = run_profile(capsys, "--compare", pa, pb, "--csv", pb)
    assert code == 2 and "is an input file" in err and pb.read_bytes() == before


def test_compare_csv(pair, tmp_path, capsys):
    pa, pb, _, _ = pair
    cs = tmp_path / "c.csv"
    code, _, err = run_profile(capsys, "--compare", pa, pb, "--csv", cs)
    assert code == 0, err
    lines = cs.read_text().splitlines()
    assert lines[0].startswith("name,in,shape_a") and len(lines) == 5


def test_change_is_none_where_undefined():
    assert change(0.0, 1.0) is None and change(None, 1.0) is None and change(2.0, 1.0) == -0.5
