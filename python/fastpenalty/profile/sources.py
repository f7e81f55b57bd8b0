"""Where the weights come from: an embedded model, one checkpoint file, or a sharded set (a
directory or its Hugging Face ``*.index.json``). A Source names the files it will read before
anything is read (so outputs can be checked against them), then yields one shard at a time.

Only regular files are opened: a FIFO or a device is refused from ``os.stat`` alone, since even
opening a FIFO blocks until a writer appears."""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field

from .. import models
from .errors import ProfileError
from .readers import Item, npz_file, safetensors_file
from .terminal import safe_text

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
KERAS_SUFFIXES = (".keras", ".h5")
SUFFIXES = (".safetensors", *TORCH_SUFFIXES, ".npz", *KERAS_SUFFIXES)
_INDEX_NAMES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_SINGLE_NAMES = ("model.safetensors", "pytorch_model.bin")
_SHARD_NAME = re.compile(r"-(\d+)-of-(\d+)\.[a-z]+$")
_MAX_INDEX = 64 << 20


@dataclass
class Source:
    label: str  # what the header line says
    kind: str  # the format, in words
    files: list = field(default_factory=list)  # every file that will be read, in order
    notes: list = field(default_factory=list)  # lines the report prints under its header
    total_bytes: int = 0
    generated: str | None = None  # the embedded model's name, or None for a checkpoint
    seed: int = 0
    indexed: frozenset = frozenset()  # the tensor names a sharded set's index lists

    def check_index(self, names_read: set) -> None:
        """A sharded set whose shards lack tensors its index lists is incomplete: refuse it."""
        missing = sorted(self.indexed - names_read)
        if missing:
            raise ProfileError(f"{safe_text(self.label)}: the index lists {len(missing)} tensors "
                               f"that its shards do not hold, e.g. {safe_text(missing[0])}")

    def shards(self):
        """Yields (file or None, iterator of Items) one shard at a time."""
        if self.generated:
            yield None, _generated_items(self.generated, self.seed)
            return
        for path in self.files:
            yield path, _reader(path)(path)


def _generated_items(name: str, seed: int):
    for key, array in models.materialize(name, dtype="float32", seed=seed, backend="numpy").items():
        yield Item(key, array)


def _reader(path: str):
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".safetensors":
        return safetensors_file.read
    if suffix == ".npz":
        return npz_file.read
    if suffix in KERAS_SUFFIXES:
        from .readers import keras_file
        return keras_file.read
    from .readers import torch_file
    return torch_file.read


def kind_of(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    return {".safetensors": "safetensors", ".npz": "npz", ".keras": "Keras .keras",
            ".h5": "Keras HDF5 weights"}.get(suffix, "torch state_dict")


def regular_file_size(path: str, what: str = "checkpoint") -> int:
    """The size of ``path``, refusing (without opening it) anything but a regular file."""
    shown = safe_text(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ProfileError(f"no such file: {shown}") from None
    except OSError as exc:
        raise ProfileError(f"cannot read {shown}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ProfileError(f"cannot read {shown}: the {what} is not a regular file "
                           "(a FIFO, socket or device)", code=2)
    return st.st_size


def generated(name: str, seed: int) -> Source:
    if name not in models.names():
        raise ProfileError(f"unknown model {name!r}; known models: {', '.join(models.names())}", code=2)
    return Source(f"{name} (generated in-process, seed {seed})", "generated",
                  total_bytes=4 * models.num_parameters(name), generated=name, seed=seed)


def _shard_note(path: str) -> list[str]:
    match = _SHARD_NAME.search(os.path.basename(path))
    if not match:
        return []
    folder = os.path.dirname(path) or "."
    index = next((n for n in _INDEX_NAMES if os.path.isfile(os.path.join(folder, n))), None)
    whole = safe_text(os.path.join(folder, index) if index else folder)
    return [f"note: this is shard {int(match.group(1))} of {int(match.group(2))} of a sharded set; "
            f"the numbers cover this shard only (profile {whole} for the whole model)"]


def _index(path: str) -> tuple[list[str], str, frozenset]:
    """The shard files of a Hugging Face index (weight_map: tensor name -> shard file name)."""
    if regular_file_size(path, "index") > _MAX_INDEX:
        raise ProfileError(f"cannot read {safe_text(path)}: an index larger than 64 MiB")
    try:
        with open(path, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
        shards = sorted(set(weight_map.values()))  # Hugging Face numbers them: -00001-of-0000N
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ProfileError(f"cannot read {safe_text(path)}: not a Hugging Face index "
                           "(a JSON object with a weight_map)") from None
    folder = os.path.dirname(path) or "."
    files = []
    for shard in shards:
        if not isinstance(shard, str) or os.path.basename(shard) != shard or shard in ("", ".", ".."):
            raise ProfileError(f"cannot read {safe_text(path)}: shard {safe_text(shard)!r} "
                               "is not a file name in the index's directory")
        if os.path.splitext(shard)[1].lower() not in (".safetensors", *TORCH_SUFFIXES):
            raise ProfileError(f"cannot read {safe_text(path)}: shard {safe_text(shard)} is "
                               "neither .safetensors nor a torch file")
        files.append(os.path.join(folder, shard))
    if not files:
        raise ProfileError(f"{safe_text(path)} lists no shards")
    return files, kind_of(files[0]), frozenset(weight_map)


def _directory(path: str) -> str:
    """The index or the single checkpoint file that a model directory holds."""
    for name in (*_INDEX_NAMES, *_SINGLE_NAMES):
        if os.path.exists(os.path.join(path, name)):
            return os.path.join(path, name)
    indexes = sorted(n for n in os.listdir(path) if n.endswith(".index.json"))
    if len(indexes) == 1:
        return os.path.join(path, indexes[0])
    raise ProfileError(f"{safe_text(path)} is a directory without a checkpoint: expected "
                       f"{' or '.join(_INDEX_NAMES + _SINGLE_NAMES)}"
                       + (f" (found {len(indexes)} *.index.json files)" if indexes else ""))


def checkpoint(path: str) -> Source:
    if os.path.isdir(path):
        path = _directory(path)
    if path.endswith(".json"):
        files, kind, names = _index(path)
        size = sum(regular_file_size(f, "shard") for f in files)
        return Source(f"{path} (sharded {kind}, {len(files)} shards)", f"sharded {kind}", files,
                      total_bytes=size, indexed=names)
    size = regular_file_size(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in SUFFIXES:
        raise ProfileError(f"cannot read {safe_text(path)}: unknown checkpoint format "
                           f"{safe_text(suffix or '(no suffix)')!r}; expected one of "
                           f"{', '.join(SUFFIXES)}, a model directory or its *.index.json", code=2)
    kind = kind_of(path)
    return Source(f"{path} ({kind})", kind, [path], _shard_note(path), total_bytes=size)
