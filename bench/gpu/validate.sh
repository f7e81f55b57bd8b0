#!/usr/bin/env bash
# One-shot validation of fastpenalty's CUDA path on a lent GPU machine (H100/H200, no network):
#   1. build and install with the machine's own torch, pybind11, scikit-build-core
#      (pip install --no-build-isolation; sm_90 only, to build fast)
#   2. tests/test_cuda.py (the GPU tests run instead of skipping)
#   3. compute-sanitizer memcheck, racecheck and synccheck on a small case
#   4. CUDA graphs and streams: capture-then-eager, first call inside a capture, two streams
#   5. the GPT-2-XL parameter list benchmark, float32 and bfloat16, against torch._foreach_add_ (the
#      probe), eager autograd and the best torch._foreach_* composition, in the same run
# Every step has its own time limit and the whole stays under 9 minutes; a failing step is
# recorded and the next one runs. Results go to bench/results/gpu-<device>-<time>/ (summary.md,
# one log per step, the benchmark CSVs). Exit status: the number of failed steps.
#
# usage: bench/gpu/validate.sh    (from anywhere; env ARCH=90-real overrides the CUDA architecture)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
START=$(date +%s)
DEVICE=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1 | tr -c 'A-Za-z0-9\n' '-')
OUT=$ROOT/bench/results/gpu-${DEVICE:-unknown}-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
SUMMARY=$OUT/summary.md
FAILED=0
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
export PYTHONUNBUFFERED=1 CMAKE_BUILD_PARALLEL_LEVEL

{
  echo "# fastpenalty CUDA validation"
  echo
  echo "- device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n1)"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (modified)')"
  echo "- python: $(python --version 2>&1), torch: $(python -c 'import torch; print(torch.__version__, torch.version.cuda)' 2>&1)"
  echo "- nvcc: $(nvcc --version 2>/dev/null | tail -n1)"
  echo
  echo "| step | result | seconds |"
  echo "|---|---|---|"
} >"$SUMMARY"

# step NAME LIMIT_SECONDS COMMAND...: runs it with its log in $OUT/NAME.log, records the outcome.
step() {
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS status
  echo "== $name (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
  status=$?
  local result="ok"
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    result="TIMED OUT"
  elif [ "$status" -ne 0 ]; then
    result="FAILED (exit $status)"
  fi
  [ "$result" = ok ] || FAILED=$((FAILED + 1))
  echo "| $name | $result | $((SECONDS - t0)) |" >>"$SUMMARY"
  echo "   $result in $((SECONDS - t0)) s; tail of $OUT/$name.log:"
  tail -n 5 "$OUT/$name.log" | sed 's/^/   /'
}

step build 180 env FASTPENALTY_JAX=0 python -m pip install --no-build-isolation --no-deps --no-index -v . \
  -C cmake.define.FASTPENALTY_CUDA=ON -C "cmake.define.FASTPENALTY_CUDA_ARCHITECTURES=${ARCH:-90-real}" \
  -C cmake.define.FASTPENALTY_JAX=OFF

# The installed package, not the source tree, from here on.
cd "$OUT" || exit 1
step import 20 python -c "
import fastpenalty, fastpenalty._cuda as c
from fastpenalty import _cuda_ops
print(fastpenalty.__file__, 'runtime', c.runtime_version(), 'driver', c.driver_version(), 'arch', c.ARCHITECTURES)
assert _cuda_ops.is_available(), _cuda_ops.unavailable_reason()"

step test_cuda 120 python -m pytest -q -p no:cacheprovider "$ROOT/tests/test_cuda.py" -x \
  --junitxml="$OUT/test_cuda.xml"

for tool in memcheck racecheck synccheck; do
  step "sanitizer-$tool" 50 compute-sanitizer --tool "$tool" --error-exitcode 1 --target-processes all \
    python "$ROOT/bench/gpu/graph_cases.py" small
done

step graphs-and-streams 40 python "$ROOT/bench/gpu/graph_cases.py" capture-then-eager first-call-capture two-streams

# What is left of the 9 minutes goes to the benchmark, split between the two dtypes.
# (worst case before this point: 180 + 20 + 120 + 3 * 50 + 40 = 510 s of limits)
left=$((540 - ($(date +%s) - START) - 10))
per=$((left / 2))
for dtype in float32 bfloat16; do
  if [ "$per" -lt 30 ]; then
    echo "| bench-gpt2-xl-$dtype | SKIPPED (no time left) | 0 |" >>"$SUMMARY"
    FAILED=$((FAILED + 1))
    continue
  fi
  step "bench-gpt2-xl-$dtype" "$per" python "$ROOT/bench/bench_torch_model.py" --device cuda --model gpt2-xl \
    --dtype "$dtype" --no-compile --no-keras --repeats 11 --warmup 2 --max-seconds "$((per / 4))" \
    --out "$OUT/bench-gpt2-xl-$dtype.csv"
done

{
  echo
  echo "total: $(($(date +%s) - START)) s, failed steps: $FAILED"
  for csv in "$OUT"/bench-*.csv; do
    [ -f "$csv" ] || continue
    echo
    echo "## $(basename "$csv")"
    echo
    python "$ROOT/bench/render_readme_table.py" "$csv" 2>/dev/null || cat "$csv"
  done
} >>"$SUMMARY"
cat "$SUMMARY"
exit "$FAILED"
