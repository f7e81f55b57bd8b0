"""Keras 3 regularizers computed by fastpenalty: drop-ins for keras.regularizers.

    from fastpenalty.keras import L1, L2, L1L2          # also l1, l2, l1_l2
    keras.layers.Dense(64, kernel_regularizer=L2(1e-4), bias_regularizer=L1(1e-5))

Same constructor defaults, factor validation, get_config()/from_config() and values as
Keras's own. They are registered Keras serializables, so models using them save to and
load from `.keras` files (import fastpenalty.keras before loading). With the torch
backend the penalty runs on fastpenalty's kernels; with any other backend, or for a
tensor the kernels do not take, it runs as the same math in keras.ops. The result has
the weight's dtype, as Keras's own does.

String identifiers: `get('l1_l2')` resolves strings to these classes without changing
Keras; `register_string_identifiers()` (opt-in, reversible) makes Keras layers accept
kernel_regularizer='l1' / 'l2' / 'l1_l2' and build these instead of Keras's own.
"""

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
