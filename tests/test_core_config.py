"""FASTPENALTY_NUM_THREADS and FASTPENALTY_ISA are read strictly: a value that cannot be used is
ignored with a RuntimeWarning at import (the default applies), never half-parsed."""
import json
import os
import subprocess
import sys

import pytest

import fastpenalty

PROBE = (
    "import json, warnings\n"
    "with warnings.catch_warnings(record=True) as caught:\n"
    "    warnings.simplefilter('always')\n"
    "    import fastpenalty\n"
    "print(json.dumps({'threads': fastpenalty.get_num_threads(), 'isa': fastpenalty.get_isa(),\n"
    "    'best': fastpenalty.available_isas()[0], 'max': fastpenalty._core.MAX_THREADS,\n"
    "    'info': fastpenalty.info().get('config_warning', ''),\n"
    "    'warnings': [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]}))\n"
)


def start(**env_updates):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTPENALTY_")}
    env.update(env_updates)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def defaults():
    return start()


def test_no_variables_no_warning(defaults):
    assert defaults["warnings"] == [] and defaults["info"] == ""
    assert 1 <= defaults["threads"] <= defaults["max"]


@pytest.mark.parametrize("text", ["3abc", "abc", "0", "-2", "2.5", "4294967298x", " ", "1e3"])
def test_malformed_thread_count_warns_and_uses_the_default(defaults, text):
    got = start(FASTPENALTY_NUM_THREADS=text)
    assert got["threads"] == defaults["threads"]
    if text.strip():
        assert len(got["warnings"]) == 1 and "FASTPENALTY_NUM_THREADS" in got["warnings"][0]


@pytest.mark.parametrize("text", ["99999999999999", "4294967298", "1025"])
def test_huge_thread_count_is_clamped_with_a_warning(text):
    got = start(FASTPENALTY_NUM_THREADS=text)
    assert got["threads"] == got["max"] == 1024
    assert len(got["warnings"]) == 1 and "above the limit" in got["warnings"][0]


@pytest.mark.parametrize("text, threads", [("3", 3), (" 2 ", 2), ("1024", 1024)])
def test_valid_thread_count_is_used_silently(text, threads):
    got = start(FASTPENALTY_NUM_THREADS=text)
    assert (got["threads"], got["warnings"]) == (threads, [])


@pytest.mark.parametrize("text", ["bogus", "avx", "avx512f", "sse2"])
def test_unknown_isa_warns_and_uses_the_best(text):
    got = start(FASTPENALTY_ISA=text)
    assert got["isa"] == got["best"]
    assert len(got["warnings"]) == 1 and "FASTPENALTY_ISA" in got["warnings"][0]


@pytest.mark.parametrize("text", ["SCALAR", " Scalar ", "scalar"])
def test_isa_name_is_case_and_blank_insensitive(text):
    got = start(FASTPENALTY_ISA=text)
    assert (got["isa"], got["warnings"]) == ("scalar", [])


def test_both_problems_are_reported_in_one_warning():
    got = start(FASTPENALTY_NUM_THREADS="x", FASTPENALTY_ISA="y")
    assert len(got["warnings"]) == 1
    assert got["info"] and got["info"] in got["warnings"][0]  # info() reports it too
    assert "FASTPENALTY_NUM_THREADS" in got["warnings"][0] and "FASTPENALTY_ISA" in got["warnings"][0]


@pytest.mark.parametrize("n", [0, -1, 1025, 2**40, 2.5, True])
def test_set_num_threads_out_of_range_is_a_value_error(n, set_threads):
    before = fastpenalty.get_num_threads()
    with pytest.raises(ValueError, match="number of threads"):
        set_threads(n)
    assert fastpenalty.get_num_threads() == before


def test_core_set_num_threads_checks_the_bound_itself(set_threads):
    with pytest.raises(ValueError, match=r"\[1, 1024\]"):
        fastpenalty._core.set_num_threads(1025)
