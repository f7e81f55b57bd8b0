"""Keras 3 on the torch backend: a small MLP whose Dense layers carry L1L2 regularizers.

Three copies of one model (same initial weights) differ only in the regularizer class:
fastpenalty.keras.L1L2, keras.regularizers.L1L2, and none (the floor a regularizer adds to).
  train_step   model.train_on_batch(x, y), the penalty inside the loss
  regularizer  sum(model.losses).backward(): the regularizers alone, forward and backward
There is no bandwidth probe for these: they are compared with each other only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .buffers import VALUE_RTOL
from .harness import Candidate, Group


class KerasUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class MlpShape:
    d_in: int
    hidden: int
    layers: int
    d_out: int
    batch: int


FULL_MLP = MlpShape(d_in=1024, hidden=4096, layers=2, d_out=16, batch=32)
QUICK_MLP = MlpShape(d_in=64, hidden=256, layers=2, d_out=8, batch=16)


def import_keras():
    """Keras on the torch backend, or KerasUnavailable saying why not."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except Exception as exc:  # not installed, or its default backend cannot import
        raise KerasUnavailable(f"keras cannot be imported: {type(exc).__name__}: {exc}") from None
    if keras.backend.backend() != "torch":
        raise KerasUnavailable(f"keras runs on the {keras.backend.backend()} backend; set KERAS_BACKEND=torch")
    return keras


def _build(keras, shape: MlpShape, make_regularizer):
    keras.utils.set_random_seed(0)  # identical initial weights in every copy
    inputs = keras.Input((shape.d_in,))
    x = inputs
    for _ in range(shape.layers):
        x = keras.layers.Dense(shape.hidden, activation="relu", kernel_regularizer=make_regularizer(),
                               bias_regularizer=make_regularizer())(x)
    outputs = keras.layers.Dense(shape.d_out, kernel_regularizer=make_regularizer())(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(1e-4), loss="mse")
    return model


def _regularizer_step(torch, model):
    variables = [v.value for v in model.trainable_variables]
    for v in variables:
        v.grad = torch.zeros_like(v)

    def step():
        total = sum(model.losses)
        total.backward()
        return total.detach()

    return step


def keras_groups(case: str, shape: MlpShape, l1: float, l2: float, *, device_type: str, threads: int = 0) -> list:
    keras = import_keras()
    import torch

    import fastpenalty.keras as fpk

    rng = np.random.default_rng(0)
    x = rng.standard_normal((shape.batch, shape.d_in), dtype=np.float32)
    y = rng.standard_normal((shape.batch, shape.d_out), dtype=np.float32)
    device = "cuda" if device_type == "cuda" else "cpu"

    variants = (("fastpenalty", "", lambda: fpk.L1L2(l1=l1, l2=l2)),
                ("keras", "", lambda: keras.regularizers.L1L2(l1=l1, l2=l2)),
                ("keras", "no regularizer", lambda: None))
    train, regularizer = [], []
    with keras.device(device):
        for provider, variant, make in variants:
            model = _build(keras, shape, make)

            def train_step(model=model, keep_loss=bool(variant == "")):
                with keras.device(device):
                    loss = model.train_on_batch(x, y)
                return loss if keep_loss else None

            train.append(Candidate(provider, train_step, variant=variant, compare=variant == ""))
            if variant == "":
                regularizer.append(Candidate(provider, _regularizer_step(torch, model)))
    n_params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    n_tensors = len(model.trainable_variables)
    common = dict(case=case, api="keras", n_elements=n_params, n_tensors=n_tensors, dtype="float32", bytes_per_call=0,
                  threads=threads, value_rtol=VALUE_RTOL["float32"])
    return [Group(mode="train_step", candidates=train, **common),
            Group(mode="regularizer", candidates=regularizer, **common)]
