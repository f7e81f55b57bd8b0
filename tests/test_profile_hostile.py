"""Hostile checkpoints: names that carry terminal escapes or rich markup are shown escaped, and
sizes a file claims are checked against the file before anything is allocated."""

import json
import struct
import zipfile

import numpy as np
import pytest

from fastpenalty.__main__ import main
from fastpenalty.profile import table

ESC_NAMES = ["evil\x1b]0;pwned\x07.weight",  # retitles the terminal
             "link\x1b]8;;http://x.invalid\x1b\\click\x1b]8;;\x1b\\.weight",  # OSC-8 hyperlink
             "csi\x1b[2J\x9b31m.weight",  # clear screen, C1 CSI
             "markup[/].weight", "[bold red]x[/bold red].weight"]


def run_profile(capsys, *args):
    code = main(["profile", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _hostile_npz(path):
    rng = np.random.default_rng(1)
    np.savez(path, **{name: rng.standard_normal((3, 4)).astype(np.float32) for name in ESC_NAMES})


def _no_control_characters(text):
    assert not any(ord(c) < 0x20 and c not in "\n\t" or 0x7f <= ord(c) <= 0x9f for c in text), repr(text)


def test_plain_table_escapes_names(tmp_path, capsys):
    path = tmp_path / "hostile.npz"
    _hostile_npz(path)
    code, out, err = run_profile(capsys, "--checkpoint", path, "--no-timing", "--plain")
    assert code == 0, err
    _no_control_characters(out + err)
    assert "evil\\x1b]0;pwned\\x07.weight" in out and "csi\\x1b[2J\\x9b31m.weight" in out
    assert "markup[/].weight" in out


def test_rich_table_escapes_names_and_ignores_markup(tmp_path, capsys):
    pytest.importorskip("rich")
    path = tmp_path / "hostile.npz"
    _hostile_npz(path)
    js = tmp_path / "r.json"
    assert run_profile(capsys, "--checkpoint", path, "--no-timing", "--json", js)[0] == 0
    capsys.readouterr()
    report = json.loads(js.read_text())
    from fastpenalty.profile.stats import LayerStats
    fields = LayerStats.__dataclass_fields__
    layers = [LayerStats(**{k: v for k, v in d.items() if k in fields}) for d in report["layers"]]
    report["shown"] = len(layers)
    table.print_report(report, layers, use_rich=True)  # rich.errors.MarkupError before the fix
    out = capsys.readouterr().out
    _no_control_characters(out)
    assert "[bold red]x[/bold red].weight" in out and "markup[/].weight" in out


def test_error_messages_escape_checkpoint_text(tmp_path, capsys):
    # a safetensors header entry whose name holds an escape and whose offsets are malformed
    header = json.dumps({"bad\x1b]0;pwned\x07": {"dtype": "F32", "shape": [2], "data_offsets": "x"}})
    raw = header.encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    code, out, err = run_profile(capsys, "--checkpoint", path)
    assert code == 1 and "cannot read" in err
    _no_control_characters(err)
    assert "\\x1b]0;pwned\\x07" in err


def _lying_npy(shape, data: bytes) -> bytes:
    header = repr({"descr": "<f4", "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_npz_header_claiming_a_huge_array_is_refused_before_allocating(tmp_path, capsys, compression):
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w", compression) as z:
        z.writestr("w.npy", _lying_npy((1 << 40,), b"\x00" * 64))  # claims 4 TiB, holds 64 bytes
    code, _, err = run_profile(capsys, "--checkpoint", path)
    assert code == 1 and "declares 4,398,046,511,104 bytes" in err and "out of memory" not in err


def test_npz_member_claiming_more_than_deflate_can_give_is_refused(tmp_path, capsys):
    # the zip directory claims 4 GiB from a few compressed bytes: deflate cannot expand that much
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("w.npy", _lying_npy((16,), b"\x00" * 64))
    data = bytearray(path.read_bytes())
    # patch the uncompressed size (local header and central directory) to 4 GiB - 1
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(sig)
        data[at + offset:at + offset + 4] = struct.pack("<I", 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    code, _, err = run_profile(capsys, "--checkpoint", path)
    assert code == 1 and "compressed" in err, err


def test_safetensors_header_claims_are_checked(tmp_path, capsys):
    header = json.dumps({"w": {"dtype": "F32", "shape": [1 << 30], "data_offsets": [0, 4 << 30]}})
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + b"\x00" * 16)
    code, _, err = run_profile(capsys, "--checkpoint", path)
    assert code == 1 and "the data has 16" in err, err


def test_safetensors_header_length_claim_is_checked(tmp_path, capsys):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 1 << 50) + b"{}")
    code, _, err = run_profile(capsys, "--checkpoint", path)
    assert code == 1 and "header claims" in err, err


def test_h5_dataset_claiming_unwritten_bytes_is_refused(tmp_path, capsys):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "huge.weights.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("layers/dense/vars/0", shape=(1 << 20, 1 << 12), dtype="f4")  # 16 GiB, never written
    code, _, err = run_profile(capsys, "--checkpoint", path)
    assert code == 1 and "declares 17,179,869,184 bytes but stores 0" in err, err
