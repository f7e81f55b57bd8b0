"""L1, L2 and L1L2: Keras's weight regularizers, computed by fastpenalty.

Each subclasses its Keras namesake, so `isinstance(r, keras.regularizers.L2)` still holds,
and keeps Keras's constructor defaults, factor validation and get_config() format. They
are registered for Keras serialization under the package name "fastpenalty"
("fastpenalty>L1", ...): a saved model refers to them by that name, and loading it needs
`import fastpenalty.keras` first, as for any registered custom object.
"""

import math

import keras

from ._math import penalty

_PUBLIC_MODULE = "fastpenalty.keras"


def check_factor(value, name):
    """Keras's rule for a factor: an int or float, finite and >= 0; returned as a float."""
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(
            f"Invalid value for argument {name}: it must be a finite, non-negative "
            f"float. Received: {name}={value!r}"
        )
    return float(value)


@keras.saving.register_keras_serializable(package="fastpenalty")
class L1(keras.regularizers.L1):
    """L1 penalty `l1 * sum(|x|)`, a drop-in for `keras.regularizers.L1` (default 0.01)."""

    def __init__(self, l1=0.01):
        self.l1 = check_factor(0.01 if l1 is None else l1, "l1")

    def __call__(self, x):
        return penalty(x, self.l1, 0.0)

    def get_config(self):
        return {"l1": self.l1}

    def __repr__(self):
        return f"{type(self).__name__}(l1={self.l1!r})"


@keras.saving.register_keras_serializable(package="fastpenalty")
class L2(keras.regularizers.L2):
    """L2 penalty `l2 * sum(x**2)`, a drop-in for `keras.regularizers.L2` (default 0.01).

    PyTorch's optimizer `weight_decay=wd` corresponds to `L2(wd / 2)`.
    """

    def __init__(self, l2=0.01):
        self.l2 = check_factor(0.01 if l2 is None else l2, "l2")

    def __call__(self, x):
        return penalty(x, 0.0, self.l2)

    def get_config(self):
        return {"l2": self.l2}

    def __repr__(self):
        return f"{type(self).__name__}(l2={self.l2!r})"


@keras.saving.register_keras_serializable(package="fastpenalty")
class L1L2(keras.regularizers.L1L2):
    """Elastic net `l1 * sum(|x|) + l2 * sum(x**2)`, a drop-in for `keras.regularizers.L1L2`.

    Both factors default to 0.0 as in Keras 3 (so `L1L2(l2=0.1)` has no L1 term), and a
    zero factor's term is left out entirely. The string 'l1_l2' means l1 = l2 = 0.01.
    """

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = check_factor(0.0 if l1 is None else l1, "l1")
        self.l2 = check_factor(0.0 if l2 is None else l2, "l2")

    def __call__(self, x):
        return penalty(x, self.l1, self.l2)

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self):
        return f"{type(self).__name__}(l1={self.l1!r}, l2={self.l2!r})"


for _cls in (L1, L2, L1L2):
    _cls.__module__ = _PUBLIC_MODULE

# Keras 3 exports its lowercase names as aliases of the classes; so do we.
l1 = L1
l2 = L2
l1_l2 = L1L2
