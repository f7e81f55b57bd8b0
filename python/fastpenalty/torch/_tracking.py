"""Following a module's parameters by name, cheaply on every call.

A module's parameter can be replaced without the module object changing: `m.weight =
nn.Parameter(...)` and `load_state_dict(..., assign=True)` register a new object through
`Module.__setattr__`, and `.half()` / `.to()` under `torch.__future__.
set_overwrite_module_params_on_conversion(True)` store one straight into `m._parameters`. The
first kind (and any submodule replacement) is seen through torch's global registration hooks,
which only bump a counter; the second by checking that each followed `_parameters` entry still
holds the object we have: one dict lookup per parameter, in C++ (`_core.slots_hold`). In-place
changes of a parameter's storage, dtype or device (`p.data = ...`, plain `.half()`) keep the
object, and the functional forms read those afresh on every call.
"""
import torch

from .. import _core

_registrations = [0]
_installed = []


def _bump(*_args):  # returns None: the registered object stays as it is
    _registrations[0] += 1


def registrations() -> int:
    """How many parameters and submodules have been registered on any module so far (counted
    from the first call)."""
    if not _installed:
        torch.nn.modules.module.register_module_parameter_registration_hook(_bump)
        torch.nn.modules.module.register_module_module_registration_hook(_bump)
        _installed.append(True)
    return _registrations[0]


class Followed:
    """The parameters of `module` with the given dotted names."""

    def __init__(self, module: torch.nn.Module, names):
        self.module = module
        self.names = list(names)
        self.seen = registrations()
        self.slots = self._slots()

    def _slots(self) -> list:
        """(the owning module's _parameters dict, the parameter's local name) per name."""
        slots = []
        for name in self.names:
            prefix, _, local = name.rpartition(".")
            try:
                owner = self.module.get_submodule(prefix) if prefix else self.module
            except AttributeError:
                owner = None
            if owner is None or owner._parameters.get(local) is None:
                raise RuntimeError(
                    f"Penalty: the module no longer has the parameter {name!r} (removed, renamed, "
                    "or its submodule replaced by one without it); build a new Penalty for the "
                    "module as it is now")
            slots.append((owner._parameters, local))
        self._dicts, self._keys = [d for d, _ in slots], [k for _, k in slots]
        return slots

    def unchanged(self, params) -> bool:
        """Whether `params` are still the module's parameters under their names."""
        if registrations() != self.seen:
            return False
        if torch.compiler.is_compiling():  # dynamo traces this form, not the C++ one
            return all(d.get(k) is p for (d, k), p in zip(self.slots, params))
        return _core.slots_hold(self._dicts, self._keys, params)

    def resolve(self) -> list:
        """The module's current parameters under the names; RuntimeError naming one that is
        gone."""
        self.seen = registrations()
        self.slots = self._slots()
        return [d[k] for d, k in self.slots]
