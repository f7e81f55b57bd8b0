"""Checkpoint formats written by their own clients: tied weights counted once (.pt, .npz,
safetensors), bfloat16 in .npz, Keras .keras / .weights.h5, and sharded sets in the Hugging Face
index format (safetensors via transformers' save_pretrained, torch .bin shards), with their
peak memory. Every run leaves the input byte-identical."""

import hashlib
import json
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastpenalty import models
from fastpenalty.__main__ import main

L1, L2 = 0.003, 0.02


def run_json(capsys, tmp_path, path, *extra):
    """The JSON report of profiling ``path``, checking the input files did not change."""
    files = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs] if os.path.isdir(path) else [path]
    before = {f: hashlib.sha256(open(f, "rb").read()).hexdigest() for f in files}
    js = tmp_path / "report.json"
    code = main(["profile", "--checkpoint", str(path), "--l1", str(L1), "--l2", str(L2),
                 "--json", str(js), *map(str, extra)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert {f: hashlib.sha256(open(f, "rb").read()).hexdigest() for f in files} == before
    return json.loads(js.read_text()), out.out


def expected_penalty(arrays):
    return sum(L1 * np.abs(np.asarray(a, np.float64)).sum() + L2 * np.square(np.asarray(a, np.float64)).sum()
               for name, a in arrays.items() if not models.is_excluded(name, a.shape))


def check_report(report, arrays, tied=None, rtol=1e-5):
    """arrays: the distinct tensors (name -> array); tied: alias -> name it shares storage with."""
    layers = {d["name"]: d for d in report["layers"]}
    assert sorted(layers) == sorted(arrays)
    for name, a in arrays.items():
        w = np.asarray(a, np.float64)
        assert layers[name]["params"] == w.size
        assert layers[name]["l1_sum"] == pytest.approx(np.abs(w).sum(), rel=rtol)
        assert layers[name]["l2_sum"] == pytest.approx(np.square(w).sum(), rel=rtol)
    want_tied = {}
    for alias, name in (tied or {}).items():
        want_tied.setdefault(name, []).append(alias)
    assert {n: d["tied"] for n, d in layers.items() if d["tied"]} == want_tied
    t = report["totals"]
    assert t["params"] == sum(np.asarray(a).size for a in arrays.values())
    assert t["tied_names"] == len(tied or {})
    assert t["penalty"] == pytest.approx(expected_penalty(arrays), rel=rtol)


def _arrays(seed=3):
    rng = np.random.default_rng(seed)
    return {"wte.weight": rng.standard_normal((50, 8)).astype(np.float32) * 0.02,
            "h.0.mlp.c_fc.weight": rng.standard_normal((8, 32)).astype(np.float32) * 0.02,
            "h.0.ln_1.weight": np.ones(8, np.float32), "h.0.ln_2.weight": np.ones(8, np.float32),
            "h.0.mlp.c_fc.bias": np.zeros(32, np.float32)}


def test_tied_weights_in_a_torch_state_dict_count_once(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    arrays = _arrays()
    state = {k: torch.from_numpy(v) for k, v in arrays.items()}
    state["lm_head.weight"] = state["wte.weight"]  # what a tied GPT-2 state_dict holds
    torch.save(state, tmp_path / "model.pt")
    report, out = run_json(capsys, tmp_path, tmp_path / "model.pt", "--no-timing")
    check_report(report, arrays, tied={"lm_head.weight": "wte.weight"})
    assert "wte.weight (tied: lm_head.weight)" in out and "tied weights" in out


def test_tied_weights_in_npz_count_once_but_equal_constants_do_not(tmp_path, capsys):
    arrays = _arrays()
    np.savez(tmp_path / "model.npz", **arrays, **{"lm_head.weight": arrays["wte.weight"]})
    report, _ = run_json(capsys, tmp_path, tmp_path / "model.npz", "--no-timing")
    # ln_1/ln_2 (all ones) are equal but constant: two tensors, not a tie
    check_report(report, arrays, tied={"lm_head.weight": "wte.weight"})


def _safetensors_with_shared_range(path, arrays, aliases):
    """A safetensors file whose alias entries point at their target's data range (the format
    allows it; the safetensors package refuses to write it)."""
    header, blobs, offset = {}, [], 0
    for name, a in arrays.items():
        raw = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    for alias, target in aliases.items():
        header[alias] = dict(header[target])
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def test_tied_weights_in_safetensors_share_a_data_range(tmp_path, capsys):
    arrays = _arrays()
    _safetensors_with_shared_range(tmp_path / "m.safetensors", arrays, {"lm_head.weight": "wte.weight"})
    report, _ = run_json(capsys, tmp_path, tmp_path / "m.safetensors", "--no-timing")
    check_report(report, arrays, tied={"lm_head.weight": "wte.weight"})


def test_bfloat16_npz(tmp_path, capsys):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(4)
    arrays = {"fc.weight": (rng.standard_normal((17, 33)) * 0.1).astype(ml_dtypes.bfloat16),
              "fc.bias": rng.standard_normal(17).astype(ml_dtypes.bfloat16)}
    np.savez(tmp_path / "bf16.npz", **arrays)
    report, _ = run_json(capsys, tmp_path, tmp_path / "bf16.npz", "--no-timing")
    assert {d["dtype"] for d in report["layers"]} == {"bfloat16"}
    check_report(report, {k: v.astype(np.float64) for k, v in arrays.items()})


_KERAS_WRITER = textwrap.dedent("""
    import sys, numpy as np, keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((7,)), keras.layers.Dense(5, name="dense_a"),
                              keras.layers.LayerNormalization(name="norm"),
                              keras.layers.Dense(3, name="head", dtype="bfloat16")])
    for layer in model.layers:  # non-trivial values for every variable
        layer.set_weights([np.random.default_rng(1).standard_normal(w.shape).astype("float32")
                           for w in layer.get_weights()])
    model.save(sys.argv[1] + "/model.keras")
    model.save_weights(sys.argv[1] + "/model.weights.h5")
    np.savez(sys.argv[1] + "/truth.npz", **{f"{l.name}.{i}": np.asarray(w).astype("float32")
                                          for l in model.layers for i, w in enumerate(l.get_weights())})
""")


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    import importlib.util
    if importlib.util.find_spec("keras") is None:  # imported only in the writer, with its backend
        pytest.skip("keras is not installed")
    pytest.importorskip("h5py")
    folder = tmp_path_factory.mktemp("keras")
    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "numpy")}
    proc = subprocess.run([sys.executable, "-c", _KERAS_WRITER, str(folder)], env=env,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"Keras could not write its files: {proc.stderr[-300:]}")
    with np.load(folder / "truth.npz") as truth:
        return folder, dict(truth)


@pytest.mark.parametrize("name", ["model.keras", "model.weights.h5"])
def test_keras_files(keras_files, tmp_path, capsys, name):
    folder, truth = keras_files
    report, _ = run_json(capsys, tmp_path, folder / name, "--no-timing")
    check_report(report, truth)
    excluded = {d["name"] for d in report["layers"] if d["excluded"]}
    assert excluded == {"dense_a.1", "norm.0", "norm.1", "head.1"}  # biases and the norm
    dtypes = {d["name"]: d["dtype"] for d in report["layers"]}
    assert dtypes["head.0"] == "bfloat16" and dtypes["dense_a.0"] == "float32"


def _write_torch_shards(folder, shards):
    """shards: file name -> {name: tensor}; written as Hugging Face's pytorch_model.bin.index.json."""
    import torch
    for file, tensors in shards.items():
        torch.save(tensors, folder / file)
    weight_map = {k: f for f, tensors in shards.items() for k in tensors}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(
        {"metadata": {"total_size": 0}, "weight_map": weight_map}))


def test_torch_bin_shards(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    arrays = _arrays()
    t = {k: torch.from_numpy(v) for k, v in arrays.items()}
    shards = {"pytorch_model-00001-of-00002.bin": {"wte.weight": t["wte.weight"], "lm_head.weight": t["wte.weight"],
                                                   "h.0.ln_1.weight": t["h.0.ln_1.weight"]},
              "pytorch_model-00002-of-00002.bin": {k: t[k] for k in ("h.0.mlp.c_fc.weight", "h.0.ln_2.weight",
                                                                     "h.0.mlp.c_fc.bias")}}
    _write_torch_shards(tmp_path, shards)
    for path in (tmp_path, tmp_path / "pytorch_model.bin.index.json"):
        report, out = run_json(capsys, tmp_path, path, "--repeat", 1)
        check_report(report, arrays, tied={"lm_head.weight": "wte.weight"})
        assert "sharded torch state_dict, 2 shards" in out
        assert report["timing"]["tensors"] == 2 and report["timing"]["groups"] == 2


@pytest.fixture(scope="module")
def hf_gpt2(tmp_path_factory):
    """A tiny GPT-2 saved by transformers' own save_pretrained in 100 kB shards (no download)."""
    pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=500, n_positions=64))
    folder = tmp_path_factory.mktemp("gpt2")
    model.save_pretrained(folder, max_shard_size="100KB")
    distinct = {}
    for name, p in model.named_parameters():  # named_parameters lists a tied head once
        distinct[name] = p.detach().numpy().copy()
    return folder, distinct


def test_hf_sharded_safetensors(hf_gpt2, tmp_path, capsys):
    folder, distinct = hf_gpt2
    shards = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
    assert len(shards) > 2
    report, out = run_json(capsys, tmp_path, folder, "--repeat", 1)
    check_report(report, distinct)
    assert f"sharded safetensors, {len(shards)} shards" in out
    assert report["source"]["files"] == [str(folder / s) for s in shards]


def test_one_shard_says_it_is_one(hf_gpt2, tmp_path, capsys):
    folder, _ = hf_gpt2
    shard = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))[1]
    report, out = run_json(capsys, tmp_path, folder / shard, "--no-timing")
    assert "this is shard 2 of" in out and "model.safetensors.index.json for the whole model" in out
    assert report["source"]["notes"] and "shard 2 of" in report["source"]["notes"][0]


_PEAK_RSS = textwrap.dedent("""
    import sys
    from fastpenalty.__main__ import main  # every import done before the baseline
    import numpy, safetensors, torch, fastpenalty.profile.collect  # noqa: F401

    def status(key):
        return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak resident set size (VmHWM) to the current one
    baseline = status("VmRSS:")
    code = main(["profile", "--checkpoint", sys.argv[1], "--repeat", "1", "--json", sys.argv[2],
                 *sys.argv[3:]])
    print(baseline, status("VmHWM:"))
    sys.exit(code)
""")


def _peak_over_baseline(path, tmp_path, *extra) -> tuple[int, int]:
    proc = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(path), str(tmp_path / "r.json"), *extra],
                          capture_output=True, text=True, timeout=300)
    if "clear_refs" in proc.stderr:
        pytest.skip("this kernel cannot reset the peak RSS")
    assert proc.returncode == 0, proc.stderr
    baseline, peak = map(int, proc.stdout.split()[-2:])
    return baseline, peak


def _safetensors_shards(folder, n_shards, elements):
    from safetensors.numpy import save_file
    rng = np.random.default_rng(5)
    weight_map = {}
    for i in range(n_shards):
        file = f"model-{i + 1:05d}-of-{n_shards:05d}.safetensors"
        tensors = {f"h.{i}.mlp.c_fc.weight": rng.standard_normal((elements // 2 // 64, 64), np.float32),
                   f"h.{i}.mlp.c_proj.weight": rng.standard_normal((elements // 2 // 64, 64), np.float32)}
        save_file(tensors, str(folder / file))
        weight_map.update(dict.fromkeys(tensors, file))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


@pytest.fixture(scope="module")
def six_shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("six_shards")
    _safetensors_shards(folder, 6, (64 << 20) // 4)
    return folder, 64 << 20, 6


@pytest.mark.parametrize("timing", [True, False])
def test_peak_memory_is_about_one_shard(six_shards, tmp_path, timing):
    pytest.importorskip("torch")
    folder, shard_bytes, n_shards = six_shards
    baseline, peak = _peak_over_baseline(folder, tmp_path, *([] if timing else ["--no-timing"]))
    extra = peak - baseline
    print(f"\npeak RSS {peak / 2**20:.0f} MiB = baseline {baseline / 2**20:.0f} MiB + "
          f"{extra / 2**20:.0f} MiB; one shard is {shard_bytes / 2**20:.0f} MiB of {n_shards}")
    # with timing, one shard stays resident, and the eager torch pass makes p.abs() and p*p
    # temporaries of one tensor (half a shard here); without, the tensor being read and its
    # 16 MiB statistics chunks, and the allocator's slack. The whole set would be 6 shards.
    assert extra < (2 if timing else 1.25) * shard_bytes, (extra, shard_bytes)
    assert json.loads((tmp_path / "r.json").read_text())["totals"]["params"] == n_shards * shard_bytes // 4


def test_index_listing_a_tensor_no_shard_holds_is_refused(tmp_path, capsys):
    from safetensors.numpy import save_file
    save_file({"a.weight": np.ones((2, 2), np.float32)}, str(tmp_path / "s1.safetensors"))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a.weight": "s1.safetensors", "b.weight": "s1.safetensors"}}))
    code = main(["profile", "--checkpoint", str(tmp_path), "--no-timing"])
    err = capsys.readouterr().err
    assert code == 1 and "lists 1 tensors that its shards do not hold, e.g. b.weight" in err


@pytest.mark.parametrize("shard", ["../elsewhere.safetensors", "/etc/passwd.safetensors", "x.txt"])
def test_index_shards_must_be_checkpoints_beside_it(tmp_path, capsys, shard):
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": shard}}))
    code = main(["profile", "--checkpoint", str(tmp_path / "model.safetensors.index.json")])
    err = capsys.readouterr().err
    assert code == 1 and "cannot read" in err and err.count("\n") == 1


def test_statistics_on_torch_tensors_match_numpy():
    """The accelerator path (--device) computes on torch tensors; here on the CPU."""
    torch = pytest.importorskip("torch")
    from fastpenalty.profile.stats import layer_stats
    rng = np.random.default_rng(9)
    for dtype in (np.float32, np.float64, np.float16):
        w = (rng.standard_normal((65, 33)) * 0.01).astype(dtype)
        a = layer_stats("x.weight", w, L1, L2, 0.005, exclude=True)
        b = layer_stats("x.weight", torch.from_numpy(w), L1, L2, 0.005, exclude=True)
        assert (a.near_zero, a.params, a.dtype) == (b.near_zero, b.params, b.dtype)
        assert a.max_abs == b.max_abs and a.l1_sum == pytest.approx(b.l1_sum, rel=1e-6)


DTYPES = ("float16", "float32", "float64", "bfloat16")


def _write_every_dtype(fmt, path, arrays):
    """arrays: name -> array of one of DTYPES (bfloat16 via ml_dtypes), written by fmt's client."""
    if fmt in ("safetensors", "pt"):
        torch = pytest.importorskip("torch")
        tensors = {k: torch.from_numpy(v.view(np.int16)).view(torch.bfloat16) if v.dtype.name == "bfloat16"
                   else torch.from_numpy(v) for k, v in arrays.items()}
        if fmt == "pt":
            torch.save(tensors, path)
        else:
            from safetensors.torch import save_file
            save_file(tensors, str(path))
    elif fmt == "npz":
        np.savez(path, **arrays)
    else:
        h5py = pytest.importorskip("h5py")
        with h5py.File(path, "w") as f:  # Keras' layout; bfloat16 as Keras writes it
            for name, a in arrays.items():
                layer, index = name.split(".")
                data = a.view("V2") if a.dtype.name == "bfloat16" else a
                ds = f.create_dataset(f"layers/{layer}/vars/{index}", data=data)
                if a.dtype.name == "bfloat16":
                    ds.attrs["dtype"] = "bfloat16"
                f[f"layers/{layer}/vars"].attrs["name"] = layer


@pytest.mark.parametrize("fmt", ["safetensors", "pt", "npz", "weights.h5"])
def test_every_core_dtype_from_every_format(tmp_path, capsys, fmt):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(6)
    arrays = {f"{dtype}.0": (rng.standard_normal((17, 5)) * 0.3).astype(
        ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype) for dtype in DTYPES}
    path = tmp_path / f"model.{fmt}"
    _write_every_dtype(fmt, path, arrays)
    report, _ = run_json(capsys, tmp_path, path, "--no-timing")
    assert {d["name"]: d["dtype"] for d in report["layers"]} == {k: k.split(".")[0] for k in arrays}
    check_report(report, {k: v.astype(np.float64) for k, v in arrays.items()})
