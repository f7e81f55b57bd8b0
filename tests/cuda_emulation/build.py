"""Builds and runs the CPU emulation of fastpenalty._cuda: the real launchers and kernels of
csrc/cuda compiled by g++ against include/cuda_runtime.h, with emulate.cpp driving them, under
AddressSanitizer and UBSan. Used by tests/test_cuda_emulation.py and mutate.py."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
CSRC = HERE.parents[1] / "csrc"
# The translation units of the module that the emulation compiles (module.cpp is the pybind11 layer).
UNITS = ["cuda/multi_tensor.cu", "cuda/grad.cu", "cuda/prox.cu", "cuda/runtime.cu", "cuda/tensor_table.cpp"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]


def compiler() -> str | None:
    return shutil.which("g++")


def _flags(csrc: Path, debug: bool = True) -> list[str]:
    return ["-std=c++20", "-O1", *(["-g"] if debug else []), *SANITIZE, "-DFP_CUDA_EMULATION", f"-I{HERE / 'include'}", f"-I{csrc}",
            f"-I{csrc / 'include'}", "-x", "c++"]


def compile_unit(source: Path, csrc: Path, obj: Path, debug: bool = True) -> None:
    result = subprocess.run([compiler(), *_flags(csrc, debug), "-c", str(source), "-o", str(obj)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"compiling {source} failed:\n{result.stderr[-4000:]}")


def objects(csrc: Path, out: Path, units=UNITS, debug: bool = True) -> dict[str, Path]:
    """Object files of `units` (paths relative to csrc), compiled into `out` (debug: with -g)."""
    out.mkdir(parents=True, exist_ok=True)
    objs = {}
    for unit in units:
        objs[unit] = out / (unit.replace("/", "_") + ".o")
        compile_unit(csrc / unit, csrc, objs[unit], debug)
    return objs


def driver_object(out: Path) -> Path:
    obj = out / "emulate.o"
    compile_unit(HERE / "emulate.cpp", CSRC, obj)
    return obj


def link(objs: list[Path], exe: Path) -> Path:
    result = subprocess.run([compiler(), *SANITIZE, *map(str, objs), "-o", str(exe)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"linking failed:\n{result.stderr[-4000:]}")
    return exe


def build(out: Path) -> Path:
    objs = objects(CSRC, out)
    return link([*objs.values(), driver_object(out)], out / "emulate")


def run(exe: Path, quick: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    return subprocess.run([str(exe)] + (["quick"] if quick else []), capture_output=True, text=True, timeout=timeout,
                          env=env)
