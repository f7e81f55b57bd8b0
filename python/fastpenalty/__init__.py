"""fastpenalty: fused L1 / L2 / elastic-net weight penalties for NumPy, PyTorch and Keras 3.

    value(w)  = l1 * sum|w| + l2 * sum w^2          (Keras convention)
    grad(w)   = l1 * sign(w) + 2 * l2 * w           sign(0) = 0

    prox_(w, lr)  w <- sign(w) * max(|w| - lr*l1, 0) / (1 + 2*lr*l2)   (exact zeros)

PyTorch's optimizer weight_decay=wd is l2 = wd / 2 here.
"""

__version__ = "0.1.0"

from . import reference  # noqa: E402
from ._api import accumulate_, accumulate_many_, grad, l1, l1_l2, l2, prox_, prox_many_, value_many  # noqa: E402
from ._prox_result import ProxResult  # noqa: E402
from ._info import info  # noqa: E402
from ._runtime import available_isas, get_isa, get_num_threads, set_isa, set_num_threads  # noqa: E402

__all__ = [
    "l1",
    "l2",
    "l1_l2",
    "grad",
    "accumulate_",
    "value_many",
    "accumulate_many_",
    "prox_",
    "prox_many_",
    "ProxResult",
    "set_num_threads",
    "get_num_threads",
    "set_isa",
    "get_isa",
    "available_isas",
    "info",
    "reference",
    "__version__",
]
