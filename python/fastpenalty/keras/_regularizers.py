"""L1, L2 and L1L2: Keras's weight regularizers, computed by fastpenalty.

Each subclasses its Keras namesake and keeps Keras's own constructor, so defaults, factor
validation (and its error messages), the factor attributes (L1's is a float32 tensor, as
in Keras), get_config(), from_config() and repr are Keras's. Only __call__ differs: the
penalty runs on fastpenalty's kernels (see _math). They are registered for Keras
serialization under the package name "fastpenalty" ("fastpenalty>L1", ...): a saved model
refers to them by that name, and loading it needs `import fastpenalty.keras` first, as for
any registered custom object.
"""

import keras

from ._math import penalty

_PUBLIC_MODULE = "fastpenalty.keras"


@keras.saving.register_keras_serializable(package="fastpenalty")
class L1(keras.regularizers.L1):
    """L1 penalty `l1 * sum(|x|)`, a drop-in for `keras.regularizers.L1` (default 0.01)."""

    def __call__(self, x):
        return penalty(x, self._l1_float(), 0.0)

    def _l1_float(self):
        # Keras keeps this factor as a float32 tensor and multiplies by it, so the factor
        # used is the float32-rounded one. Read back once, not on every call.
        factor = self.l1
        cached = getattr(self, "_l1_cache", None)
        if cached is None or cached[0] is not factor:
            cached = self._l1_cache = (factor, float(factor))
        return cached[1]


@keras.saving.register_keras_serializable(package="fastpenalty")
class L2(keras.regularizers.L2):
    """L2 penalty `l2 * sum(x**2)`, a drop-in for `keras.regularizers.L2` (default 0.01).

    PyTorch's optimizer `weight_decay=wd` corresponds to `L2(wd / 2)`.
    """

    def __call__(self, x):
        return penalty(x, 0.0, self.l2)


@keras.saving.register_keras_serializable(package="fastpenalty")
class L1L2(keras.regularizers.L1L2):
    """Elastic net `l1 * sum(|x|) + l2 * sum(x**2)`, a drop-in for `keras.regularizers.L1L2`.

    Both factors default to 0.0 as in Keras 3 (so `L1L2(l2=0.1)` has no L1 term), and a
    zero factor's term is left out entirely. The string 'l1_l2' means l1 = l2 = 0.01.
    """

    def __call__(self, x):
        return penalty(x, self.l1, self.l2)


for _cls in (L1, L2, L1L2):
    _cls.__module__ = _PUBLIC_MODULE

# Keras 3 exports its lowercase names as aliases of the classes; so do we.
l1 = L1
l2 = L2
l1_l2 = L1L2
