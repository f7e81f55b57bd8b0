"""Keras 3 weights: ``.weights.h5`` (``model.save_weights``) and ``.keras`` (``model.save``: a zip
holding ``model.weights.h5``), read with h5py, no Keras and no torch needed.

Keras stores a layer's variables as ``.../<layer>/vars/0, 1, ...`` with the layer's own name
in the ``vars`` group's ``name`` attribute, so a Dense layer named ``dense_a`` gives
``dense_a.0`` (kernel) and ``dense_a.1`` (bias); bfloat16 variables are 2-byte opaque data
tagged ``dtype="bfloat16"``. Before a dataset is read, the bytes its shape
declares are checked against the bytes it stores (or can decompress to)."""

from __future__ import annotations

import math
import zipfile

import numpy as np

from . import Item, bfloat16_dtype, float_weight, skip_reason

_COMPRESSION_MAX_RATIO = 1100


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ValueError("reading Keras weights needs h5py: pip install h5py") from None
    return h5py


def _name(path: str, dataset) -> str:
    parts = path.split("/")
    if len(parts) >= 3 and parts[-2] == "vars":
        layer = dataset.parent.attrs.get("name", parts[-3])
        layer = layer.decode() if isinstance(layer, bytes) else str(layer)
        prefix = [p for p in parts[:-3] if p != "layers"]
        return ".".join([*prefix, layer, parts[-1]])
    return ".".join(p for p in parts if p not in ("layers", "vars"))


def _check_claims(path: str, dataset) -> None:
    claimed = math.prod(dataset.shape or ()) * dataset.dtype.itemsize
    stored = dataset.id.get_storage_size()
    filtered = dataset.id.get_create_plist().get_nfilters() > 0
    if claimed and (stored == 0 or (stored < claimed and not filtered)
                    or claimed > _COMPRESSION_MAX_RATIO * stored + 4096):
        raise ValueError(f"dataset {path!r} declares {claimed:,} bytes but stores {stored:,}")


def _dtype_name(dataset) -> str:
    """Keras writes bfloat16 variables as 2-byte opaque data with a dtype attribute."""
    tag = dataset.attrs.get("dtype")
    tag = tag.decode() if isinstance(tag, bytes) else tag
    if dataset.dtype == np.dtype("V2") and tag == "bfloat16":
        return "bfloat16"
    return dataset.dtype.name


def _datasets(h5file):
    h5py = _h5py()
    found = []
    h5file.visititems(lambda path, obj: found.append((path, obj)) if isinstance(obj, h5py.Dataset)
                      else None)
    return found


def _read_h5(fileobj):
    h5py = _h5py()
    with h5py.File(fileobj, "r") as f:
        for path, dataset in _datasets(f):
            name = _name(path, dataset)
            dtype_name = _dtype_name(dataset)
            reason = skip_reason(name, dtype_name)
            if reason:
                yield Item(name, skip=reason)
                continue
            _check_claims(path, dataset)
            array = np.asarray(dataset[()])
            item = float_weight(name, array.view(bfloat16_dtype()) if dtype_name == "bfloat16" else array)
            del array
            yield item
            del item


def read(path: str):
    if path.lower().endswith(".keras"):
        if not zipfile.is_zipfile(path):
            raise ValueError("not a .keras archive (a zip)")
        with zipfile.ZipFile(path) as archive:
            if "model.weights.h5" not in archive.namelist():
                raise ValueError("the archive holds no model.weights.h5")
            with archive.open("model.weights.h5") as inner:
                yield from _read_h5(inner)
        return
    yield from _read_h5(path)
