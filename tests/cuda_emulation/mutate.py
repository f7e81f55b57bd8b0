"""Mutation check of the CUDA emulation: injects index, rounding, barrier and launcher bugs into a
copy of csrc/, rebuilds the emulation with each one and expects the emulation to fail. Prints the
score; exits 1 if a bug survived or a mutation no longer applies (its text is gone from csrc/).

usage: python tests/cuda_emulation/mutate.py [-j JOBS] [NAME ...]"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build  # noqa: E402


class Mutation(NamedTuple):
    kind: str
    name: str
    path: str  # relative to csrc/
    old: str | tuple  # a text of the file, or several (each replaced by the new one in its place)
    new: str | tuple


KERNELS, GRAD_K, FORMAT, REDUCE = ("cuda/multi_tensor_kernels.cuh", "cuda/grad_kernels.cuh",
                                   "cuda/element_format.cuh", "cuda/block_reduce.cuh")
LAUNCH, GRAD_L, TABLE = "cuda/multi_tensor.cu", "cuda/grad.cu", "cuda/tensor_table.cpp"
SLICES = "cuda/launch_util.cuh"  # the slice loop both list launchers run
PROX_K, PROX_L = "cuda/prox_kernels.cuh", "cuda/prox.cu"

MUTATIONS = [
    Mutation("index", "32-bit element offset of a segment", KERNELS,
             "const int64_t first = c0 * kChunk;", "const int64_t first = int(c0 * kChunk);"),
    Mutation("index", "32-bit element index in grad's element-wise loop", GRAD_K,
             "for (int64_t i = scalar_from + first; i < n; i += stride)",
             "for (int i = int(scalar_from + first); i < n; i += int(stride))"),
    Mutation("index", "vector count rounded up (reads past a chunk)", KERNELS,
             "const int nv = len / V;", "const int nv = (len + V - 1) / V;"),
    Mutation("index", "block start ignores the remainder", KERNELS,
             "int64_t c = b * per_block + (b < extra ? b : extra);", "int64_t c = b * per_block;"),
    Mutation("index", "table walk stops one tensor early", KERNELS,
             "while (next <= c) {", "while (next < c) {"),
    Mutation("index", "short last chunk not counted", TABLE,
             "return n / c + (n % c != 0 ? 1 : 0);", "return n / c;"),
    Mutation("index", "grad vector tail starts one vector late", GRAD_K,
             "scalar_from = nv * V;", "scalar_from = nv * V + V;"),
    Mutation("rounding", "float32 rounded toward zero", FORMAT,
             "return __float_as_uint(__double2float_rn(u));", "return __float_as_uint(__double2float_rz(u));"),
    Mutation("rounding", "float16 rounded toward zero on the way", FORMAT,
             "return fp_f32_to_f16(__double2float_rn(u));", "return fp_f32_to_f16(__double2float_rz(u));"),
    Mutation("rounding", "bfloat16 truncated", FORMAT,
             "return fp_f32_to_bf16(__double2float_rn(u));",
             "return uint16_t(__float_as_uint(__double2float_rn(u)) >> 16);"),
    Mutation("rounding", "gradient computed in float32", FORMAT,
             "fp_grad_term<L1, L2>(double(x), l1, two_l2);",
             "fp_grad_term<L1, L2>(float(x), float(l1), float(two_l2));"),
    Mutation("rounding", "gradient in double where the CPU computes in float32", FORMAT,
             "if (narrow) {", "if (false) {"),
    Mutation("rounding", "float32 gradient although a factor does not fit float32", KERNELS,
             "const bool narrow = fp_factors_fit_float(l1, l2);", "const bool narrow = true;"),
    Mutation("rounding", "float16 NaN canonicalized on load (as the intrinsics do)", FORMAT,
             "return fp_f16_to_f32(b);",
             "return (b & 0x7fffu) > 0x7c00u ? __uint_as_float(0x7fffffffu) : fp_f16_to_f32(b);"),
    Mutation("rounding", "g + 2*l2*w contracted into one fma", FORMAT,
             "return F::round(ACC ? double(F::load(g)) + t : t);",
             "return F::round(ACC && L2 ? __fma_rn(two_l2, double(x), double(F::load(g)) + "
             "fp_grad_term<L1, false>(double(x), l1, two_l2)) : ACC ? double(F::load(g)) + t : t);"),
    Mutation("barrier", "no __syncthreads before the warp sums are read", REDUCE,
             "  __syncthreads();\n", "\n"),
    Mutation("barrier", "last shuffle step dropped", REDUCE,
             "for (int offset = 16; offset > 0; offset >>= 1) v += ",
             "for (int offset = 16; offset > 1; offset >>= 1) v += "),
    Mutation("barrier", "last warp's sum dropped", REDUCE,
             "s = lane < kWarps ? warp_sums[lane] : 0.0;", "s = lane < kWarps - 1 ? warp_sums[lane] : 0.0;"),
    Mutation("launcher", "every slice writes the same partials", SLICES, "    used += grid;\n", "\n"),
    Mutation("launcher", "per-tensor factors not offset for later slices", LAUNCH,
             "a.l1s = l1s + first * a.l1_step;", "a.l1s = l1s;"),
    Mutation("launcher", "one block more than the scratch holds", SLICES,
             "const int64_t grid = pass_grid(chunks, sms);", "const int64_t grid = pass_grid(chunks, sms) + 1;"),
    Mutation("launcher", "slices one tensor short", SLICES,
             "list.count - first < kSlots ? list.count - first : kSlots;",
             "list.count - first < kSlots ? list.count - first : kSlots - 1;"),
    Mutation("launcher", "16-byte path ignores g's alignment", TABLE,
             "(list.g == nullptr || e.g % 16 == 0)", "true"),
    Mutation("launcher", "grad's 16-byte path ignores out's alignment", GRAD_L,
             "const bool vector_ok = w % 16 == 0 && out % 16 == 0;", "const bool vector_ok = w % 16 == 0;"),
    Mutation("launcher", "overlap of w and g not rejected", TABLE,
             'if (w < g + bytes && g < w + bytes) bad(t, "weight and gradient memory overlap");', ""),
    Mutation("launcher", "zero-factor tensors written in accumulate (g + 0)", KERNELS,
             ("if (M == Mode::overwrite || l1 != 0.0 || l2 != 0.0)",
              "if constexpr (M == Mode::overwrite) return segment_share<F, M, false, false>"),
             ("if (true)", "return segment_share<F, M, false, false>")),
    Mutation("rounding", "prox: NaN stored through the rounding (bits not kept)", PROX_K,
             "  if (x != x) return old;\n", "\n"),
    Mutation("rounding", "prox: float32 arithmetic although T or S does not fit float32", PROX_K,
             "const bool narrow = fp_prox_fits_float(t, s);", "const bool narrow = true;"),
    Mutation("index", "prox: sums of the old weights", PROX_K, "const A x = F::load(nb);", "const A x = F::load(b);"),
    Mutation("launcher", "prox: later slices read the first slice's factors", PROX_L,
             "    a.first = first;\n", "    a.first = 0;\n"),
    Mutation("launcher", "prox: invalid device factors not refused", PROX_K,
             "if (!list_factors_ok(a)) {", "if (false) {"),
]


def dependencies() -> dict[str, set[str]]:
    """For each emulated translation unit, the files of csrc/ its compilation reads."""
    deps = {}
    for unit in build.UNITS:
        out = subprocess.run([build.compiler(), *build._flags(build.CSRC), "-MM", str(build.CSRC / unit)],
                             capture_output=True, text=True, check=True).stdout
        deps[unit] = {str(Path(p).resolve().relative_to(build.CSRC)) for p in out.replace("\\\n", " ").split()[1:]
                      if Path(p).resolve().is_relative_to(build.CSRC)}
    return deps


def try_mutation(m: Mutation, base_objs: dict, driver: Path, deps: dict, work: Path) -> tuple[Mutation, str]:
    """'caught: ...', 'SURVIVED' or 'stale: ...' for one mutation."""
    csrc = work / "csrc"
    shutil.copytree(build.CSRC, csrc)
    target = csrc / m.path
    text = target.read_text()
    olds, news = (m.old, m.new) if isinstance(m.old, tuple) else ((m.old,), (m.new,))
    for old, new in zip(olds, news):
        if text.count(old) != 1:
            return m, f"stale: {old!r} occurs {text.count(old)} times in {m.path}"
        text = text.replace(old, new)
    target.write_text(text)
    units = [unit for unit, files in deps.items() if m.path in files]
    try:
        objs = {**base_objs, **build.objects(csrc, work / "obj", units, debug=False)}
        exe = build.link([*objs.values(), driver], work / "emulate")
    except RuntimeError as exc:
        return m, "caught: does not compile (" + str(exc).splitlines()[0] + ")"
    try:
        # the unmutated run takes 10-20 s alone, near a minute on a machine shared by several builds
        result = build.run(exe, quick=True, timeout=180)
    except subprocess.TimeoutExpired:
        return m, "caught: timed out"
    if result.returncode == 0 and "all passed" in result.stdout:
        return m, "SURVIVED"
    lines = [ln for ln in result.stderr.splitlines() if "FAIL" in ln or "ERROR" in ln or "runtime error" in ln
             or "deadlock" in ln]
    return m, "caught: " + (lines[0][:160] if lines else f"exit status {result.returncode}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("names", nargs="*", help="run only the mutations whose name contains one of these")
    args = parser.parse_args(argv)
    if build.compiler() is None:
        print("needs g++")
        return 2
    chosen = [m for m in MUTATIONS if not args.names or any(n in m.name for n in args.names)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base_objs = build.objects(build.CSRC, tmp / "base", debug=False)
        driver = build.driver_object(tmp / "base")
        deps = dependencies()
        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(lambda im: try_mutation(im[1], base_objs, driver, deps, tmp / f"m{im[0]}"),
                                    enumerate(chosen)))
    caught = 0
    for m, verdict in results:
        caught += verdict.startswith("caught")
        print(f"[{m.kind:8}] {m.name}: {verdict}")
    print(f"mutation score: {caught} of {len(results)} caught")
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
