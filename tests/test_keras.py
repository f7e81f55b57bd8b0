"""fastpenalty.keras against Keras's own regularizers: API, serialization, values, training."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import json
import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import fastpenalty  # noqa: E402
import fastpenalty.keras as fk  # noqa: E402
from fastpenalty.keras import _math  # noqa: E402

TORCH_BACKEND = keras.backend.backend() == "torch"
needs_torch_backend = pytest.mark.skipif(not TORCH_BACKEND, reason="needs KERAS_BACKEND=torch")
# JAX without jax_enable_x64 silently computes float64 requests in float32.
HAS_FLOAT64 = keras.backend.standardize_dtype(keras.ops.zeros((), "float64").dtype) == "float64"
FLOAT64 = pytest.param(
    "float64", marks=pytest.mark.skipif(not HAS_FLOAT64, reason="backend has no float64")
)

# (fastpenalty class, Keras class, names of its factors)
PAIRS = [
    (fk.L1, keras.regularizers.L1, ("l1",)),
    (fk.L2, keras.regularizers.L2, ("l2",)),
    (fk.L1L2, keras.regularizers.L1L2, ("l1", "l2")),
]
PAIR_IDS = ["L1", "L2", "L1L2"]

# Relative tolerance against Keras: both round the factor and the sums differently.
RTOL = {"float32": 2e-6, "float64": 1e-13, "float16": 4e-3, "bfloat16": 2e-2}


def _as_float(t):
    return float(keras.ops.convert_to_numpy(keras.ops.cast(t, "float64")))


def _dtype_name(t):
    return keras.backend.standardize_dtype(t.dtype)


def _same_config(ours, theirs):
    # Exactly: Keras's L1 (alone) keeps its factor as a float32 tensor, so its config (and
    # its float64 values) carry the factor rounded to float32; so do fastpenalty's.
    return ours.get_config() == theirs.get_config()


def _rtol(theirs, dtype):
    if dtype == "float64" and keras.backend.backend() == "numpy":
        return 1e-6  # Keras's numpy backend takes abs/square of a float64 array in float32
    if dtype == "float64" and type(theirs) is keras.regularizers.L1:
        return 1e-7
    return RTOL[dtype]


def _random(shape, seed, dtype="float32"):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------- API and validation


def test_lowercase_names_alias_the_classes_like_keras():
    assert fk.l1 is fk.L1 and fk.l2 is fk.L2 and fk.l1_l2 is fk.L1L2
    assert keras.regularizers.l1 is keras.regularizers.L1  # the convention mirrored


@pytest.mark.parametrize("ours, theirs, names", PAIRS, ids=PAIR_IDS)
def test_is_a_keras_regularizer_of_the_same_kind(ours, theirs, names):
    reg = ours()
    assert isinstance(reg, theirs)
    assert isinstance(reg, keras.regularizers.Regularizer)


@pytest.mark.parametrize("ours, theirs, names", PAIRS, ids=PAIR_IDS)
def test_defaults_match_keras(ours, theirs, names):
    assert _same_config(ours(), theirs())
    none_args = {name: None for name in names}
    assert _same_config(ours(**none_args), theirs(**none_args))


ACCEPTED = [0, 0.0, 3, 0.25, True, np.float64(0.5), 1e30]
REJECTED = [-1, -1e-9, math.inf, -math.inf, math.nan, "0.1", np.float32(0.1), [0.1]]


@pytest.mark.parametrize("ours, theirs, names", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("value", ACCEPTED, ids=repr)
def test_accepts_what_keras_accepts(ours, theirs, names, value):
    for name in names:
        assert _same_config(ours(**{name: value}), theirs(**{name: value}))


@pytest.mark.parametrize("ours, theirs, names", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("value", REJECTED, ids=repr)
def test_rejects_what_keras_rejects(ours, theirs, names, value):
    for name in names:
        with pytest.raises(ValueError):
            theirs(**{name: value})
        with pytest.raises(ValueError, match=name):
            ours(**{name: value})


def test_config_values_are_floats():
    config = fk.L1L2(l1=1, l2=True).get_config()
    assert config == {"l1": 1.0, "l2": 1.0}
    assert all(type(v) is float for v in config.values())


# ---------------------------------------------------------------- serialization


@pytest.mark.parametrize(
    "reg", [fk.L1(0.3), fk.L2(0.002), fk.L1L2(0.1, 0.2), fk.L1L2(l2=0.5)], ids=repr
)
def test_config_round_trip(reg):
    again = type(reg).from_config(reg.get_config())
    assert type(again) is type(reg)
    assert again.get_config() == reg.get_config()


@pytest.mark.parametrize(
    "reg", [fk.L1(0.3), fk.L2(0.002), fk.L1L2(0.1, 0.2)], ids=repr
)
def test_keras_serialize_deserialize_round_trip(reg):
    payload = keras.regularizers.serialize(reg)
    assert payload["registered_name"] == f"fastpenalty>{type(reg).__name__}"
    assert payload["config"] == reg.get_config()
    payload = json.loads(json.dumps(payload))  # what a saved model holds
    for again in (
        keras.regularizers.deserialize(payload),
        keras.regularizers.get(payload),
        keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(reg)),
    ):
        assert type(again) is type(reg)
        assert again.get_config() == reg.get_config()


def test_keras_configs_still_load_as_keras_regularizers():
    payload = keras.regularizers.serialize(keras.regularizers.L2(0.1))
    assert type(keras.regularizers.deserialize(payload)) is keras.regularizers.L2


# ---------------------------------------------------------------- string identifiers


@pytest.mark.parametrize(
    "name, cls, config",
    [
        ("l1", fk.L1, {"l1": float(np.float32(0.01))}),  # L1 rounds its factor, as Keras's
        ("l2", fk.L2, {"l2": 0.01}),
        ("l1_l2", fk.L1L2, {"l1": 0.01, "l2": 0.01}),
        ("L1L2", fk.L1L2, {"l1": 0.0, "l2": 0.0}),
    ],
)
def test_get_resolves_strings_to_fastpenalty(name, cls, config):
    reg = fk.get(name)
    assert type(reg) is cls
    assert reg.get_config() == config
    assert fk.get(name) is not reg  # a fresh instance each time


def test_get_matches_keras_for_the_strings_keras_knows():
    for name in ("l1", "l2", "l1l2", "L1", "L2", "L1L2"):
        ours, theirs = fk.get(name), keras.regularizers.get(name)
        assert isinstance(ours, type(theirs))
        assert _same_config(ours, theirs)


def test_get_passes_other_identifiers_through():
    assert fk.get(None) is None
    reg = fk.L2(0.3)
    assert fk.get(reg) is reg
    assert type(fk.get("orthogonal_regularizer")) is keras.regularizers.OrthogonalRegularizer
    assert fk.get(keras.regularizers.serialize(reg)).get_config() == {"l2": 0.3}
    with pytest.raises(ValueError):
        fk.get("no_such_regularizer")


def test_keras_alone_rejects_l1_l2_string():
    with pytest.raises(ValueError):
        keras.layers.Dense(2, kernel_regularizer="l1_l2")


def test_registered_strings_reach_layers_and_restore():
    with fk.register_string_identifiers() as registration:
        assert registration.active
        dense = keras.layers.Dense(2, kernel_regularizer="l1_l2", bias_regularizer="l1")
        lstm = keras.layers.LSTM(2, recurrent_regularizer="l2")
        # Keras's class names and Keras configs are not redirected.
        assert type(keras.regularizers.get("L2")) is keras.regularizers.L2
    assert not registration.active
    assert type(dense.kernel_regularizer) is fk.L1L2
    assert dense.kernel_regularizer.get_config() == {"l1": 0.01, "l2": 0.01}
    assert type(dense.bias_regularizer) is fk.L1
    assert type(lstm.cell.recurrent_regularizer) is fk.L2
    # Back to Keras's own resolution.
    assert type(keras.layers.Dense(2, kernel_regularizer="l1").kernel_regularizer) is (
        keras.regularizers.L1
    )
    with pytest.raises(ValueError):
        keras.layers.Dense(2, kernel_regularizer="l1_l2")
    registration.restore()  # a second restore changes nothing
    assert type(keras.regularizers.get("l2")) is keras.regularizers.L2


def test_registration_without_context_manager():
    registration = fk.register_string_identifiers()
    try:
        assert type(keras.regularizers.get("l2")) is fk.L2
    finally:
        registration.restore()
    assert type(keras.regularizers.get("l2")) is keras.regularizers.L2


# ---------------------------------------------------------------- values


FACTORS = [
    (fk.L1(0.03), keras.regularizers.L1(0.03)),
    (fk.L2(0.07), keras.regularizers.L2(0.07)),
    (fk.L1L2(0.02, 0.05), keras.regularizers.L1L2(0.02, 0.05)),
    (fk.L1L2(l2=0.05), keras.regularizers.L1L2(l2=0.05)),
    (fk.L1L2(l1=0.05), keras.regularizers.L1L2(l1=0.05)),
]
FACTOR_IDS = ["L1", "L2", "L1L2", "L1L2-l2-only", "L1L2-l1-only"]


@pytest.mark.parametrize("ours, theirs", FACTORS, ids=FACTOR_IDS)
@pytest.mark.parametrize("dtype", ["float32", FLOAT64, "float16", "bfloat16"])
@pytest.mark.parametrize("shape", [(7,), (33, 17), (3, 3, 4, 5000)])
def test_value_matches_keras(ours, theirs, dtype, shape):
    x = keras.ops.convert_to_tensor(_random(shape, seed=sum(shape)), dtype=dtype)
    got = ours(x)
    assert _dtype_name(got) == _dtype_name(theirs(x)) == dtype
    assert tuple(got.shape) == ()
    # Keras sums half-precision weights into a half-precision result (its sum over the
    # largest shape here overflows to inf); fastpenalty sums in fp32 and rounds once, so
    # the reference for half dtypes is Keras on the same values in fp32.
    exact_dtype = dtype if dtype in ("float32", "float64") else "float32"
    want = theirs(keras.ops.cast(x, exact_dtype))
    np.testing.assert_allclose(_as_float(got), _as_float(want), rtol=_rtol(theirs, dtype))
    oracle = fastpenalty.reference.l1_l2(
        keras.ops.convert_to_numpy(keras.ops.cast(x, "float64")),
        l1=getattr(ours, "l1", 0.0),
        l2=getattr(ours, "l2", 0.0),
    )
    np.testing.assert_allclose(_as_float(got), oracle, rtol=RTOL[dtype])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_sum_does_not_overflow(dtype):
    # sum|x| = 100000 is past fp16's largest value (65504); the penalty, 1000, is not.
    x = keras.ops.ones((100000,), dtype=dtype)
    got = fk.L1(0.01)(x)
    assert _dtype_name(got) == dtype
    np.testing.assert_allclose(_as_float(got), 1000.0, rtol=RTOL[dtype])


@pytest.mark.parametrize("ours, theirs", FACTORS, ids=FACTOR_IDS)
def test_value_on_a_variable_matches_keras(ours, theirs):
    var = keras.Variable(_random((64, 32), seed=3))
    got, want = ours(var), theirs(var)
    assert _dtype_name(got) == "float32"
    np.testing.assert_allclose(_as_float(got), _as_float(want), rtol=RTOL["float32"])


def test_numpy_input_gives_a_backend_tensor_like_keras():
    x = _random((10, 3), seed=4)
    got, want = fk.L1L2(0.1, 0.2)(x), keras.regularizers.L1L2(0.1, 0.2)(x)
    assert type(got) is type(want)
    np.testing.assert_allclose(_as_float(got), _as_float(want), rtol=RTOL["float32"])


def test_empty_weight_gives_zero():
    x = keras.ops.zeros((0, 5))
    assert _as_float(fk.L1L2(0.1, 0.2)(x)) == 0.0


def test_zero_factor_terms_are_skipped_like_keras():
    x = keras.ops.convert_to_tensor(np.array([math.inf, 1.0], dtype="float32"))
    # L1L2 leaves a zero factor's term out, so no 0 * inf = nan appears.
    assert _as_float(fk.L1L2(l1=0.0, l2=0.5)(x)) == math.inf
    assert _as_float(keras.regularizers.L1L2(l1=0.0, l2=0.5)(x)) == math.inf
    zero = fk.L1L2()(x)
    assert _as_float(zero) == 0.0 and _dtype_name(zero) == "float32"


@pytest.mark.parametrize("dtype", ["float32", FLOAT64])
def test_keras_ops_fallback_equals_keras_exactly(dtype):
    x = keras.ops.convert_to_tensor(_random((31, 29), seed=5), dtype=dtype)
    for (l1, l2), theirs in [
        ((0.03, 0.0), keras.regularizers.L1(0.03)),
        ((0.0, 0.07), keras.regularizers.L2(0.07)),
        ((0.02, 0.05), keras.regularizers.L1L2(0.02, 0.05)),
    ]:
        got = _math.keras_ops_penalty(x, l1, l2)
        assert _dtype_name(got) == dtype
        if type(theirs) is keras.regularizers.L1 and dtype == "float64":
            # Keras's L1 multiplies by its factor rounded to float32 (see _same_config);
            # its L1L2 computes the same term with the factor as given.
            theirs = keras.regularizers.L1L2(l1=l1)
        assert _as_float(got) == _as_float(theirs(x))


@needs_torch_backend
@pytest.mark.parametrize("ours, theirs", FACTORS, ids=FACTOR_IDS)
def test_gradient_matches_keras(ours, theirs):
    import torch

    w = _random((40, 25), seed=8)
    w[0, :3] = 0.0  # sign(0) = 0
    grads = []
    for reg in (ours, theirs):
        var = keras.Variable(w)
        reg(var).backward()
        grads.append(var.value.grad.detach().cpu().numpy())
        assert isinstance(var.value, torch.Tensor)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6, atol=1e-9)


@needs_torch_backend
def test_value_under_mixed_precision_autocast_matches_keras():
    """Inside a layer's call under 'mixed_float16' a variable's value is autocast to fp16."""

    class PenalizedDense(keras.layers.Layer):
        def __init__(self, regularizer, **kwargs):
            super().__init__(**kwargs)
            self.regularizer = regularizer

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], 4), initializer="ones")

        def call(self, x):
            self.add_loss(self.regularizer(self.kernel))
            return x @ self.kernel

    results = []
    for reg in (fk.L1L2(0.01, 0.02), keras.regularizers.L1L2(0.01, 0.02)):
        layer = PenalizedDense(reg, dtype="mixed_float16")
        layer(keras.ops.ones((2, 3)))
        (loss,) = layer.losses
        results.append((_dtype_name(loss), _as_float(loss)))
        # Outside the call (where Keras's trainer collects weight penalties): float32.
        assert _dtype_name(reg(layer.kernel)) == "float32"
    # Under the autocast scope a variable reports the autocast dtype, and so does the value.
    assert results[0][0] == results[1][0] == "float16"
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=RTOL["float16"])


# ---------------------------------------------------------------- models


def _model(lib, dtype=None):
    """Conv2D -> LSTM -> Dense, every kind of weight regularized, from `lib`'s classes."""
    inputs = keras.Input((6, 6, 2))
    h = keras.layers.Conv2D(
        3, 3, kernel_regularizer=lib.L2(0.05), bias_regularizer=lib.L1(0.02), dtype=dtype
    )(inputs)
    h = keras.layers.Reshape((16, 3))(h)
    h = keras.layers.LSTM(
        4,
        kernel_regularizer=lib.L1L2(0.01, 0.03),
        recurrent_regularizer=lib.L2(0.04),
        recurrent_initializer="glorot_uniform",  # torch has no half-precision QR on CPU
        bias_regularizer=lib.L1L2(l2=0.05),
        dtype=dtype,
    )(h)
    outputs = keras.layers.Dense(
        2, kernel_regularizer=lib.L1(0.03), bias_regularizer=lib.L2(0.02), dtype=dtype
    )(h)
    return keras.Model(inputs, outputs)


def _twin_models(dtype=None):
    ours, theirs = _model(fk, dtype), _model(keras.regularizers, dtype)
    rng = np.random.default_rng(9)
    weights = [rng.standard_normal(w.shape).astype("float32") * 0.5 for w in theirs.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    return ours, theirs


def _data():
    rng = np.random.default_rng(10)
    return (
        rng.standard_normal((8, 6, 6, 2)).astype("float32"),
        rng.standard_normal((8, 2)).astype("float32"),
    )


def test_model_losses_match_keras():
    ours, theirs = _twin_models()
    got, want = ours.losses, theirs.losses
    assert len(got) == len(want) == 7
    for g, w in zip(got, want):
        assert _dtype_name(g) == _dtype_name(w)
        np.testing.assert_allclose(_as_float(g), _as_float(w), rtol=RTOL["float32"])
    assert all(_as_float(g) > 0 for g in got)


@pytest.mark.skipif(keras.backend.backend() == "numpy", reason="the numpy backend does not train")
def test_one_fit_step_matches_keras():
    x, y = _data()
    ours, theirs = _twin_models()
    histories = []
    for model in (ours, theirs):
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
        history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        histories.append(history.history["loss"][0])
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-5)
    for got, want in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "mixed_bfloat16"])
def test_model_losses_dtype_under_dtype_policies_matches_keras(dtype):
    ours, theirs = _twin_models(dtype)
    # Keras sums half-precision weights in their dtype (on the numpy backend a bf16 sum loses
    # most of its digits), so the values are checked against Keras's regularizers on the same
    # weights in fp32; the dtypes against Keras's under the policy.
    exact = _model(keras.regularizers)
    exact.set_weights([np.asarray(w, dtype=np.float32) for w in ours.get_weights()])
    for g, w, e in zip(ours.losses, theirs.losses, exact.losses):
        assert _dtype_name(g) == _dtype_name(w)
        np.testing.assert_allclose(_as_float(g), _as_float(e), rtol=RTOL.get(_dtype_name(w)))


def test_model_saves_and_loads_with_fastpenalty_regularizers(tmp_path):
    ours, _ = _twin_models()
    path = str(tmp_path / "model.keras")
    ours.save(path)
    loaded = keras.saving.load_model(path)
    for before, after in zip(ours.layers, loaded.layers):
        for attr in ("kernel_regularizer", "bias_regularizer"):
            if hasattr(before, attr) and getattr(before, attr) is not None:
                assert type(getattr(after, attr)) is type(getattr(before, attr))
                assert getattr(after, attr).get_config() == getattr(before, attr).get_config()
    lstm = loaded.get_layer(index=3)
    assert type(lstm.cell.recurrent_regularizer) is fk.L2
    for g, w in zip(loaded.losses, ours.losses):
        assert _as_float(g) == _as_float(w)
    x, _ = _data()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), ours.predict(x, verbose=0))
