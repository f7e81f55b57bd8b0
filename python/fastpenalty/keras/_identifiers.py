"""String identifiers ('l1', 'l2', 'l1_l2') that resolve to fastpenalty's regularizers.

Two ways, neither of which happens on import:

* `get(identifier)` resolves an identifier the way `keras.regularizers.get` does, but
  strings name fastpenalty's classes. Nothing global changes:
  `Dense(8, kernel_regularizer=fastpenalty.keras.get("l1_l2"))`.
* `register_string_identifiers()` makes Keras itself resolve 'l1', 'l2' and 'l1_l2' to
  fastpenalty's classes, so `Dense(8, kernel_regularizer="l1_l2")` works. Keras layers
  look regularizer strings up in the table that `keras.regularizers.get` reads; this adds
  or replaces those three lowercase entries in that table, for the whole process, until
  the returned handle's `restore()` (or the end of its `with` block) puts Keras's own
  entries back. Keras's classes, the class-name entries ('L1', 'L2', 'L1L2', 'l1l2') and
  the loading of configs that name Keras's regularizers are left as they are.

Keras 3 documents the string 'l1_l2' as L1L2(l1=0.01, l2=0.01) but rejects it (its table
only has 'l1l2', which gives L1L2() with both factors 0); here 'l1_l2' gives 0.01 and 0.01.
"""

import keras

from ._regularizers import L1, L1L2, L2


class _L1L2FromString:
    """What the string 'l1_l2' stands for. A class because keras.regularizers.get calls a
    class it finds under a string (and would return any other callable as the regularizer
    itself); calling this one gives a fresh L1L2(l1=0.01, l2=0.01)."""

    def __new__(cls):
        return L1L2(l1=0.01, l2=0.01)


# Strings that keras.regularizers.get maps to L1, L2 or L1L2, plus the documented 'l1_l2'.
_BY_STRING = {
    "l1": L1,
    "l2": L2,
    "l1_l2": _L1L2FromString,
    "L1": L1,
    "L2": L2,
    "L1L2": L1L2,
    "l1l2": L1L2,
}
_KERAS_TABLE_OVERRIDES = ("l1", "l2", "l1_l2")
_ABSENT = object()


def get(identifier):
    """Like `keras.regularizers.get`, with strings resolved to fastpenalty's regularizers.

    'l1' and 'l2' give factor 0.01, 'l1_l2' gives l1 = l2 = 0.01; 'L1', 'L2', 'L1L2' and
    'l1l2' give the class defaults, as in Keras. Other strings, config dicts, callables
    and None go to `keras.regularizers.get` unchanged.
    """
    if isinstance(identifier, str) and identifier in _BY_STRING:
        return _BY_STRING[identifier]()
    return keras.regularizers.get(identifier)


class StringIdentifierRegistration:
    """Handle returned by `register_string_identifiers()`; a context manager that restores
    Keras's own string table on exit. Restoring twice is harmless."""

    def __init__(self, table):
        self._table = table
        self._saved = {name: table.get(name, _ABSENT) for name in _KERAS_TABLE_OVERRIDES}
        for name in _KERAS_TABLE_OVERRIDES:
            table[name] = _BY_STRING[name]

    @property
    def active(self):
        return self._saved is not None

    def restore(self):
        """Put back the entries that were there before this registration."""
        if self._saved is None:
            return
        for name, previous in self._saved.items():
            if previous is _ABSENT:
                self._table.pop(name, None)
            else:
                self._table[name] = previous
        self._saved = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.restore()


def register_string_identifiers():
    """Make Keras resolve the strings 'l1', 'l2' and 'l1_l2' to fastpenalty's regularizers.

    Takes effect at once and process-wide, for every layer built afterwards (strings are
    resolved when a layer is constructed). Returns a handle: call `.restore()`, or use
    `with register_string_identifiers():`, to go back to Keras's own resolution.
    """
    table = _keras_string_table()
    return StringIdentifierRegistration(table)


def _keras_string_table():
    # The dict keras.regularizers.get reads strings from. It is not public API, so it is
    # located through the function that uses it rather than by a private module path.
    table = getattr(keras.regularizers.get, "__globals__", {}).get("ALL_OBJECTS_DICT")
    if not isinstance(table, dict):
        raise RuntimeError(
            "register_string_identifiers: this Keras version does not resolve regularizer "
            "strings through a table fastpenalty can extend; pass "
            "fastpenalty.keras.get('l1_l2') (or an instance) to the layer instead."
        )
    return table
