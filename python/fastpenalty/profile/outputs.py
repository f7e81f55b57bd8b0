"""Output files: checked before any work is done, and written whole or not at all.

``check_outputs`` refuses an output that is an input file (or any shard of it), a path given to
two outputs, a non-regular file (a FIFO or device would block or be clobbered), a missing or
unwritable directory, and a plot format matplotlib cannot write. ``write_atomically`` writes a
temporary file next to the target and renames it over the target only when it is complete."""

from __future__ import annotations

import os
import stat
import tempfile

from .errors import ProfileError
from .terminal import safe_text


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _check_one(flag: str, path: str, inputs: list[str]) -> None:
    shown = safe_text(path)
    for source in inputs:
        if _same_file(path, source):
            raise ProfileError(f"--{flag} {shown} is an input file; refusing to overwrite it", code=2)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise ProfileError(f"cannot write {shown}: {exc.strerror or exc}", code=2) from None
    if mode is not None and not stat.S_ISREG(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise ProfileError(f"cannot write {shown}: it is {what}", code=2)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ProfileError(f"cannot write {shown}: no such directory {safe_text(folder)}", code=2)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ProfileError(f"cannot write {shown}: directory {safe_text(folder)} is not writable",
                           code=2)


def check_outputs(outputs: dict[str, str | None], inputs: list[str]) -> None:
    """outputs: flag name -> path (None when not asked, '-' for stdout)."""
    given = [(flag, path) for flag, path in outputs.items() if path and path != "-"]
    for i, (flag, path) in enumerate(given):
        _check_one(flag, path, inputs)
        for other_flag, other in given[:i]:
            if _same_file(path, other):
                raise ProfileError(f"--{other_flag} and --{flag} name the same file "
                                   f"{safe_text(path)}", code=2)


def write_atomically(path: str, write, binary: bool = False) -> None:
    """write(file object) fills a temporary file beside ``path``, which then replaces ``path``.
    On any failure the temporary file is removed and ``path`` is left as it was."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".fastpenalty-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise ProfileError(f"cannot write {safe_text(path)}: {exc.strerror or exc}") from None
    try:
        mode = "wb" if binary else "w"
        kwargs = {} if binary else {"newline": "", "encoding": "utf-8"}
        with os.fdopen(fd, mode, **kwargs) as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise ProfileError(f"cannot write {safe_text(path)}: {exc.strerror or exc}") from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
