"""CPU kernel selection: available_isas, set_isa/get_isa, the FASTPENALTY_ISA cap at startup, and
info() reporting what is in use."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastpenalty
from fastpenalty import reference
from _tolerances import VALUE_RTOL, assert_value_close

ALL_ISAS = ["avx512", "avx2", "scalar"]  # best first


def test_available_isas_are_known_and_best_first():
    available = fastpenalty.available_isas()
    assert isinstance(available, list) and available
    assert set(available) <= set(ALL_ISAS)
    assert available == [name for name in ALL_ISAS if name in available]
    assert "scalar" in available
    assert fastpenalty.get_isa() in available


def test_set_isa_returns_the_previous_one(isa):
    for other in fastpenalty.available_isas():
        assert fastpenalty.set_isa(other) == isa
        assert fastpenalty.get_isa() == other
        assert fastpenalty.set_isa(isa) == other
    assert fastpenalty.get_isa() == isa


@pytest.mark.parametrize("name", ["avx1024", "", "AVX 2", "sse"])
def test_unknown_isa_is_a_value_error_and_changes_nothing(name):
    before = fastpenalty.get_isa()
    with pytest.raises(ValueError):
        fastpenalty.set_isa(name)
    assert fastpenalty.get_isa() == before


def test_info_reports_the_kernel_and_threads_in_use(isa, set_threads):
    set_threads(3)
    info = fastpenalty.info()
    assert isinstance(info, dict)
    assert isa in info.values()
    assert 3 in info.values()


def test_every_isa_gives_the_oracle_value(isa, weights):
    w = weights(3 * fastpenalty._core.CHUNK + 7, np.float32)
    assert_value_close(fastpenalty.l1_l2(w, 0.1, 0.2), reference.l1_l2(w, 0.1, 0.2), VALUE_RTOL[w.dtype])


def run_with_env(env_updates, code):
    env = dict(os.environ)
    env.pop("FASTPENALTY_ISA", None)
    env.update(env_updates)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.parametrize("name", ALL_ISAS)
def test_env_var_caps_the_isa_at_startup(name):
    if name not in fastpenalty.available_isas():
        pytest.skip(f"{name} is not available on this machine")
    code = (
        "import numpy as np, fastpenalty as fp\n"
        "w = np.arange(-50, 50, dtype=np.float32)\n"
        "print(fp.get_isa(), fp.get_isa() in fp.info().values(), fp.l1(w, 1.0))"
    )
    isa_name, in_info, value = run_with_env({"FASTPENALTY_ISA": name}, code).split()
    assert isa_name == name
    assert in_info == "True"
    assert float(value) == float(np.abs(np.arange(-50, 50)).sum())


def test_without_env_var_the_best_isa_is_chosen():
    code = "import fastpenalty as fp; print(fp.get_isa(), fp.available_isas()[0])"
    chosen, best = run_with_env({}, code).split()
    assert chosen == best
