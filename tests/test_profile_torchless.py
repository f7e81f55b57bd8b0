"""`profile` and `bench` without torch: a sitecustomize on PYTHONPATH makes `import torch` fail
in the child process, as on a machine where only NumPy is installed. safetensors (read through
NumPy), npz and the embedded models work; torch files fail with one line naming the fix."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

_BLOCKER = textwrap.dedent("""
    import sys

    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)

    sys.meta_path.insert(0, _NoTorch())
""")


@pytest.fixture
def no_torch_env(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(_BLOCKER)
    paths = [str(blocker)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def fastpenalty(env, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "fastpenalty", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_the_blocker_blocks(no_torch_env):
    proc = subprocess.run([sys.executable, "-c", "import torch"], env=no_torch_env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "blocked by the test" in proc.stderr


def _weights():
    rng = np.random.default_rng(2)
    return {"fc.weight": rng.standard_normal((17, 9)).astype(np.float32),
            "fc.bias": rng.standard_normal(17).astype(np.float32),
            "out.weight": rng.standard_normal((3, 17)).astype(np.float64)}


def _check(proc, js, weights):
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    layers = {d["name"]: d for d in json.loads(js.read_text())["layers"]}
    assert sorted(layers) == sorted(weights)
    for name, w in weights.items():
        w = np.asarray(w, np.float64)
        assert layers[name]["l1_sum"] == pytest.approx(np.abs(w).sum(), rel=1e-5)
        assert layers[name]["l2_sum"] == pytest.approx(np.square(w).sum(), rel=1e-5)


def test_npz_with_bfloat16_without_torch(no_torch_env, tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    weights = {**_weights(), "emb.weight": np.linspace(-1, 1, 64).reshape(8, 8).astype(ml_dtypes.bfloat16)}
    np.savez(tmp_path / "m.npz", **weights)
    js = tmp_path / "r.json"
    proc = fastpenalty(no_torch_env, "profile", "--checkpoint", tmp_path / "m.npz", "--json", js,
                       "--repeat", 1)
    _check(proc, js, weights)
    assert json.loads(js.read_text())["timing"]["eager"].startswith("NumPy eager")


def test_sharded_safetensors_without_torch(no_torch_env, tmp_path):
    from safetensors.numpy import save_file
    weights = _weights()
    names = list(weights)
    save_file({k: weights[k] for k in names[:2]}, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file({k: weights[k] for k in names[2:]}, str(tmp_path / "model-00002-of-00002.safetensors"))
    weight_map = {k: f"model-0000{1 if i < 2 else 2}-of-00002.safetensors" for i, k in enumerate(names)}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    js = tmp_path / "r.json"
    proc = fastpenalty(no_torch_env, "profile", "--checkpoint", tmp_path, "--json", js, "--no-timing")
    _check(proc, js, weights)


def test_embedded_model_without_torch(no_torch_env):
    proc = fastpenalty(no_torch_env, "profile", "--model", "mlp-tiny", "--repeat", 1)
    assert proc.returncode == 0, proc.stderr
    assert "5,852 parameters" in proc.stdout and "eager NumPy" in proc.stdout


def test_torch_file_without_torch_is_one_line(no_torch_env, tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"PK\x03\x04 whatever")
    proc = fastpenalty(no_torch_env, "profile", "--checkpoint", path)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "needs PyTorch: pip install torch" in proc.stderr


def test_bench_without_torch(no_torch_env, tmp_path):
    proc = fastpenalty(no_torch_env, "bench", "--quick", "--cases", "tensor-1e5",
                       "--out", tmp_path / "b.csv", timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "torch groups left out: torch is not installed" in proc.stderr
    assert "Traceback" not in proc.stderr and (tmp_path / "b.csv").exists()
