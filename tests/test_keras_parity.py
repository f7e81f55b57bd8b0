"""What a Keras user can observe is Keras's: the checks of Keras 3's own regularizer tests, run
with fastpenalty's classes in place of Keras's, and the exact error messages, configs, factor
attributes and repr of Keras's classes."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

import fastpenalty.keras as fk  # noqa: E402

KR = keras.regularizers
PAIRS = [(fk.L1, KR.L1, ("l1",)), (fk.L2, KR.L2, ("l2",)), (fk.L1L2, KR.L1L2, ("l1", "l2"))]
PAIR_IDS = ["L1", "L2", "L1L2"]


def _np(t):
    return np.asarray(keras.ops.convert_to_numpy(t), dtype=np.float64)


def _random_variable(seed=0, value=None):
    value = np.random.default_rng(seed).random((4, 4)).astype(np.float32) if value is None else value
    return keras.Variable(value), value


# ------------------------------------------------ the checks of Keras's regularizer tests


@pytest.mark.parametrize("reg", [fk.L1(0.1), fk.L2(0.1), fk.L1L2(l1=0.1, l2=0.2)], ids=PAIR_IDS)
def test_class_serialization(reg):
    config = reg.get_config()
    again = type(reg).from_config(config)
    assert type(again) is type(reg) and again.get_config() == config
    payload = json.loads(json.dumps(keras.saving.serialize_keras_object(reg)))
    revived = keras.saving.deserialize_keras_object(payload)
    assert type(revived) is type(reg) and revived.get_config() == config


def test_l1_l2_and_l1l2_values():
    x, value = _random_variable(1)
    np.testing.assert_allclose(_np(fk.L1(0.1)(x)), 0.1 * np.sum(np.abs(value)), rtol=1e-6)
    np.testing.assert_allclose(_np(fk.L2(0.1)(x)), 0.1 * np.sum(np.square(value)), rtol=1e-6)
    np.testing.assert_allclose(
        _np(fk.L1L2(l1=0.1, l2=0.2)(x)),
        0.1 * np.sum(np.abs(value)) + 0.2 * np.sum(np.square(value)),
        rtol=1e-6,
    )


def test_get_method():
    assert isinstance(fk.get("l1l2"), fk.L1L2)
    assert isinstance(fk.get("l1"), fk.L1)
    assert isinstance(fk.get("l2"), fk.L2)
    assert isinstance(fk.get("orthogonal_regularizer"), KR.OrthogonalRegularizer)
    assert fk.get(None) is None
    with pytest.raises(ValueError):
        fk.get("typo")


def test_l1l2_get_config():
    reg = fk.L1L2(l1=0.01, l2=0.02)
    config = reg.get_config()
    assert config == {"l1": 0.01, "l2": 0.02}
    again = fk.L1L2.from_config(config)
    assert again.get_config() == config
    assert (again.l1, again.l2) == (0.01, 0.02)


@pytest.mark.parametrize("reg", [fk.L1(0.1), fk.L2(0.1), fk.L1L2(l1=0.1, l2=0.2)], ids=PAIR_IDS)
def test_zero_weights_give_zero(reg):
    x, _ = _random_variable(value=np.zeros((4, 4), np.float32))
    assert _np(reg(x)) == 0.0


def test_l1_of_negated_weights_is_the_same():
    pos, _ = _random_variable(value=np.ones((4, 4), np.float32))
    neg, _ = _random_variable(value=-np.ones((4, 4), np.float32))
    assert _np(fk.L1(0.1)(pos)) == _np(fk.L1(0.1)(neg))


@pytest.mark.parametrize("reg", [fk.L1(0.0), fk.L2(0.0), fk.L1L2(0.0, 0.0)], ids=PAIR_IDS)
def test_zero_coefficients_give_zero(reg):
    x, _ = _random_variable(2)
    assert _np(reg(x)) == 0.0


@pytest.mark.parametrize("scale, l2_bigger", [(10.0, True), (0.1, False)])
def test_l2_against_l1_for_large_and_small_weights(scale, l2_bigger):
    x, _ = _random_variable(value=np.full((4, 4), scale, np.float32))
    l1_val, l2_val = float(_np(fk.L1(1.0)(x))), float(_np(fk.L2(1.0)(x)))
    assert (l2_val > l1_val) is l2_bigger


def test_l1l2_with_one_factor_equals_l1_or_l2():
    x, _ = _random_variable(3)
    np.testing.assert_allclose(_np(fk.L1L2(l1=0.1, l2=0.0)(x)), _np(fk.L1(0.1)(x)), rtol=1e-6)
    np.testing.assert_allclose(_np(fk.L1L2(l1=0.0, l2=0.1)(x)), _np(fk.L2(0.1)(x)), rtol=1e-6)


# ------------------------------------------------ validation: what Keras accepts and says

REJECTED = ["not_a_number", math.nan, math.inf, -math.inf, -1, -0.001, [0.1], "0.1"]
ACCEPTED = [0, 0.0, 1, 1e-10, 1e6, True, np.float64(0.5)]


@pytest.mark.parametrize("ours, theirs, names", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("value", REJECTED, ids=repr)
def test_error_message_is_keras_word_for_word(ours, theirs, names, value):
    for name in names:
        with pytest.raises(ValueError) as want:
            theirs(**{name: value})
        with pytest.raises(ValueError) as got:
            ours(**{name: value})
        assert str(got.value) == str(want.value)
        assert "expected a non-negative float" in str(got.value)


@pytest.mark.parametrize("ours, theirs, names", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("value", ACCEPTED + [None], ids=repr)
def test_config_and_factor_attributes_are_keras_exactly(ours, theirs, names, value):
    a, b = ours(**{n: value for n in names}), theirs(**{n: value for n in names})
    assert a.get_config() == b.get_config()
    assert all(type(v) is float for v in a.get_config().values())
    for name in names:
        # Keras's L1 keeps its factor as a backend tensor (float32), L2 and L1L2 as a float.
        mine, keras_own = getattr(a, name), getattr(b, name)
        assert type(mine) is type(keras_own)
        assert float(mine) == float(keras_own)


def test_l1_none_config_is_float32_rounded_like_keras():
    assert fk.L1(None).get_config() == {"l1": 0.009999999776482582} == KR.L1(None).get_config()


@pytest.mark.parametrize("ours, theirs, names", PAIRS, ids=PAIR_IDS)
def test_repr_has_keras_form(ours, theirs, names):
    pattern = r"<{} object at 0x[0-9a-fA-F]+>"
    assert re.fullmatch(pattern.format(re.escape(f"fastpenalty.keras.{ours.__name__}")), repr(ours()))
    keras_name = f"{theirs.__module__}.{theirs.__qualname__}"
    assert re.fullmatch(pattern.format(re.escape(keras_name)), repr(theirs()))


@pytest.mark.parametrize("ours, theirs, names", PAIRS, ids=PAIR_IDS)
def test_get_of_class_and_instance_like_keras(ours, theirs, names):
    made = fk.get(ours)
    assert type(made) is ours and made.get_config() == theirs().get_config()
    instance = ours()
    assert fk.get(instance) is instance
    assert keras.regularizers.get(instance) is instance
