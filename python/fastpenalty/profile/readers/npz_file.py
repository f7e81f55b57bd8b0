""".npz (np.savez / np.savez_compressed), read member by member without torch.

Before a member is decompressed, the shape and dtype its .npy header declares are checked
against the member's size in the zip directory, and that size against what the compression can
give (deflate expands at most about 1032:1), so a lying header cannot make us allocate.
A 2-byte void member (``|V2``) is bfloat16: that is how NumPy saves ml_dtypes.bfloat16 arrays.

npz stores no sharing, so ``np.savez(**state_dict)`` writes a tied pair twice: a member whose
bytes, dtype and shape equal an earlier member's (same CRC-32 first) is reported as tied to it,
unless its values are all equal (zeros or ones at initialization are not ties)."""

from __future__ import annotations

import math
import zipfile

import numpy as np

from . import Item, bfloat16_dtype, float_weight

_DEFLATE_MAX_RATIO = 1100


def _header(member) -> tuple[np.dtype, tuple, bool, int]:
    version = np.lib.format.read_magic(member)
    reader = {(1, 0): np.lib.format.read_array_header_1_0,
              (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if reader is None:
        raise ValueError(f"unsupported .npy version {version}")
    shape, fortran, dtype = reader(member)
    return dtype, shape, fortran, member.tell()


def _check_claims(info: zipfile.ZipInfo, dtype: np.dtype, shape: tuple, offset: int) -> None:
    stored = info.compress_size
    if info.compress_type == zipfile.ZIP_STORED and stored != info.file_size:
        raise ValueError(f"member {info.filename!r} claims {info.file_size:,} bytes "
                         f"but stores {stored:,}")
    if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > _DEFLATE_MAX_RATIO * stored + 4096:
        raise ValueError(f"member {info.filename!r} claims {info.file_size:,} bytes "
                         f"from {stored:,} compressed")
    claimed = math.prod(shape) * dtype.itemsize
    if offset + claimed != info.file_size:
        raise ValueError(f"member {info.filename!r} declares {claimed:,} bytes of data; "
                         f"the archive holds {info.file_size - offset:,}")


def _load(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[np.ndarray, tuple, str]:
    """(the data as a flat array, its shape, its order)"""
    with archive.open(info) as member:
        dtype, shape, fortran, offset = _header(member)
        _check_claims(info, dtype, shape, offset)
        if dtype.hasobject:
            raise ValueError(f"member {info.filename!r} holds Python objects")
        if dtype == np.dtype("V2"):
            dtype = bfloat16_dtype()
        count = math.prod(shape)
        array = np.empty(count, dtype=dtype)
        view = memoryview(array.view(np.uint8).reshape(-1))
        got = 0
        while got < view.nbytes:
            n = member.readinto(view[got:])
            if not n:
                raise ValueError(f"member {info.filename!r} is cut short")
            got += n
    return array, shape, "F" if fortran else "C"


def _constant(flat: np.ndarray) -> bool:
    return flat.size == 0 or bool(np.all(flat == flat[0]))


def read(path: str):
    if not zipfile.is_zipfile(path):
        raise ValueError("not a zip archive")
    with zipfile.ZipFile(path) as archive:
        candidates = {}  # (crc, size) -> names of the members already read with it
        for info in archive.infolist():
            if info.is_dir():
                continue
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            flat, shape, order = _load(archive, info)
            item = float_weight(name, flat.reshape(shape, order=order))
            key = (info.CRC, info.file_size, flat.dtype, shape, order)
            if item.array is not None and not _constant(flat):
                for earlier, earlier_name in candidates.get(key, []):
                    if np.array_equal(_load(archive, earlier)[0].view(np.uint8), flat.view(np.uint8)):
                        item = Item(name, tied_to=earlier_name)
                        break
                else:
                    candidates.setdefault(key, []).append((info, name))
            del flat
            yield item  # the consumer drops it before asking for the next: one tensor at a time
            del item
