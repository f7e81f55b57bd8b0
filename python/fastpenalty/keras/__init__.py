"""Keras 3 regularizers computed by fastpenalty: drop-ins for keras.regularizers.

    from fastpenalty.keras import L1, L2, L1L2          # also l1, l2, l1_l2
    keras.layers.Dense(64, kernel_regularizer=L2(1e-4), bias_regularizer=L1(1e-5))

Keras's own constructors (defaults, validation, error messages, get_config()/from_config(),
repr), values computed by fastpenalty. They are registered Keras serializables, so models
using them save to and load from `.keras` files (import fastpenalty.keras before loading).
On the torch, jax and numpy backends the penalty runs on fastpenalty's kernels; with any
other backend, or for a tensor the kernels do not take, it runs as the same math in
keras.ops (half-precision weights summed in fp32). The result has the weight's dtype, as
Keras's own does. Keras's backend is chosen before Keras is first imported (KERAS_BACKEND).

String identifiers: `get('l1_l2')` resolves strings to these classes without changing
Keras; `register_string_identifiers()` (opt-in, reversible) makes Keras layers accept
kernel_regularizer='l1' / 'l2' / 'l1_l2' and build these instead of Keras's own.
"""

from ._backend import import_keras

import_keras()  # a clear message where Keras cannot start on its default backend

from ._identifiers import StringIdentifierRegistration, get, register_string_identifiers
from ._regularizers import L1, L1L2, L2, l1, l1_l2, l2

__all__ = [
    "L1",
    "L2",
    "L1L2",
    "l1",
    "l2",
    "l1_l2",
    "get",
    "register_string_identifiers",
    "StringIdentifierRegistration",
]
