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


def test_mutation_check_catches_every_injected_bug(capsys):
    """tests/cuda_emulation/mutate.py: index, rounding, barrier and launcher bugs, each rebuilt into
    the emulation, each must make it fail (a few minutes of CPU: one rebuild and run per bug)."""
    from cuda_emulation import mutate

    status = mutate.main(["-j", "2"])
    report = capsys.readouterr().out
    assert status == 0, report
    assert f"mutation score: {len(mutate.MUTATIONS)} of {len(mutate.MUTATIONS)} caught" in report
    kinds = {m.kind for m in mutate.MUTATIONS}
    assert kinds == {"index", "rounding", "barrier", "launcher"}
