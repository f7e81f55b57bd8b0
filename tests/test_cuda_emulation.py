"""The CUDA module's real host launchers and kernels, run on the CPU (tests/cuda_emulation): built
with g++ under AddressSanitizer and UBSan, every element bit for bit against the CPU kernels'
rounding contract, values, untouched memory, errors before any launch, long lists split over
several launches, two deterministic thread schedules and index arithmetic past 2^32 elements.
Needs g++ only (no CUDA toolkit, no GPU)."""
import pytest

from cuda_emulation import build as emulation

pytestmark = pytest.mark.skipif(emulation.compiler() is None, reason="needs g++")


def test_real_launchers_under_emulation_with_sanitizers(tmp_path):
    exe = emulation.build(tmp_path)
    result = emulation.run(exe)
    assert result.returncode == 0, result.stderr[-6000:] + result.stdout[-2000:]
    assert "all passed (0 failures)" in result.stdout
    assert "ERROR: AddressSanitizer" not in result.stderr and "runtime error" not in result.stderr
