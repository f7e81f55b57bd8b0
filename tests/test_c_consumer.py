"""The C ABI as a C++ project sees it: tests/c_consumer is configured with
find_package(fastpenalty) against `python -m fastpenalty --cmake-dir`, built, run on weights this
test writes, and its results are checked against the NumPy oracle."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from _tolerances import FLOAT_DTYPES, DTYPE_IDS, assert_elements_close, value_rtol

import fastpenalty
from fastpenalty import _cmake, _core, reference
from fastpenalty._dtypes import numpy_code

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c_consumer")
CMAKE = shutil.which("cmake")

pytestmark = pytest.mark.skipif(CMAKE is None, reason="cmake is not on PATH")


def _run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_cmake_dir_cli_and_functions_agree():
    printed = _run([sys.executable, "-m", "fastpenalty", "--cmake-dir"]).strip()
    assert printed == _cmake.cmake_dir()
    assert os.path.isfile(os.path.join(printed, "fastpenaltyConfig.cmake"))
    assert os.path.isfile(os.path.join(printed, "fastpenaltyConfigVersion.cmake"))
    assert os.path.isfile(os.path.join(_cmake.include_dir(), "fastpenalty", "fastpenalty.h"))
    assert os.path.isfile(_cmake.library_path())


@pytest.fixture(scope="module")
def consumer(tmp_path_factory):
    """The consumer executable, configured and built once per test session."""
    build = tmp_path_factory.mktemp("c_consumer_build")
    cmake_dir = _run([sys.executable, "-m", "fastpenalty", "--cmake-dir"]).strip()
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    _run([CMAKE, "-S", SOURCE, "-B", str(build), *generator, "-DCMAKE_BUILD_TYPE=Release",
          f"-Dfastpenalty_DIR={cmake_dir}"])
    _run([CMAKE, "--build", str(build)])
    exe = build / ("consumer.exe" if sys.platform == "win32" else "consumer")
    assert exe.exists()
    return exe


def _facts(output: str) -> dict:
    facts = {}
    for line in output.splitlines():
        key, _, rest = line.partition(" ")
        facts[key] = rest
    return facts


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=[DTYPE_IDS[d] for d in FLOAT_DTYPES])
def test_consumer_matches_reference(consumer, tmp_path, weights, dtype):
    # Three chunks and a ragged tail, so the library's chunking and multi-tensor split both show.
    n = 3 * _core.CHUNK + 5
    w = weights((n,), dtype)
    l1, l2 = 0.003, 0.02
    w_file, g_file = tmp_path / "w.bin", tmp_path / "g.bin"
    w.tofile(w_file)
    out = _run([str(consumer), str(w_file), str(n), str(numpy_code(w.dtype)), repr(l1), repr(l2), str(g_file)])
    facts = _facts(out)

    assert facts["config_version"] == fastpenalty.__version__
    assert facts["abi"].split() == [str(_core.ABI_VERSION)] * 3
    assert facts["version"].split() == [fastpenalty.__version__] * 2
    assert facts["isa"] in fastpenalty.available_isas()
    # The optional `cuda` component is found exactly when the installation carries its targets.
    cuda_targets = os.path.join(_cmake.cmake_dir(), "fastpenaltyCudaTargets.cmake")
    assert facts["cuda_component"] == ("1" if os.path.exists(cuda_targets) else "0")

    expected = reference.l1_l2(w, l1, l2)
    rtol = value_rtol([dtype])
    for key in ("value", "value_many", "accumulate_value"):
        assert abs(float(facts[key]) - expected) <= rtol * abs(expected), (key, facts[key], expected)

    g = np.fromfile(g_file, dtype=w.dtype)
    assert_elements_close(g, reference.grad(w, l1, l2), dtype)
    assert facts["accumulate_matches_grad"] == "1"

    half = n // 2
    sums = [float(x) for x in facts["sums_many"].split()]
    for got, part in ((sums[:2], w[:half]), (sums[2:], w[half:])):
        assert abs(got[0] - reference.l1(part, 1.0)) <= rtol * reference.l1(part, 1.0)
        assert abs(got[1] - reference.l2(part, 1.0)) <= rtol * reference.l2(part, 1.0)

    assert int(facts["bad_factor_status"]) == 1  # FP_ERR_INVALID_ARGUMENT
    assert "l1" in facts["bad_factor_message"]
    assert facts["bad_factor_status_string"] == "invalid argument"

