"""Where the C ABI lives, for C and C++ projects that link fastpenalty.

    cmake_dir()     the directory of fastpenaltyConfig.cmake: pass it as -Dfastpenalty_DIR=...
                    (or print it with `python -m fastpenalty --cmake-dir`), then
                    find_package(fastpenalty) gives the imported target fastpenalty::fastpenalty
    include_dir()   the directory holding fastpenalty/fastpenalty.h
    library_path()  the shared library itself (libfastpenalty.so.1 / .1.dylib / fastpenalty.dll)
    jax_library_path()  the XLA FFI handlers of fastpenalty.jax, or None when not built

An installed wheel keeps all of them inside the package: fastpenalty/{libfastpenalty.so.1, include/,
cmake/}. An in-place development install symlinks the compiled files into python/fastpenalty/
from the CMake build directory; there the build tree's own config (<build>/cmake) and the source
tree's header are used.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_CONFIG = "fastpenaltyConfig.cmake"
_HEADER = Path("fastpenalty") / "fastpenalty.h"


def _library_name() -> str:
    """The library file by its soname, which carries the C ABI version (no unversioned link is
    installed)."""
    from . import _core

    if sys.platform == "win32":
        return "fastpenalty.dll"
    if sys.platform == "darwin":
        return f"libfastpenalty.{_core.ABI_VERSION}.dylib"
    return f"libfastpenalty.so.{_core.ABI_VERSION}"


def _core_file() -> str:
    from . import _core

    return _core.__file__


def _package_dir() -> Path:
    """Where the compiled files are: beside fastpenalty._core (which may sit elsewhere than the
    .py files, e.g. under a scikit-build-core redirecting editable install)."""
    return Path(_core_file()).parent


def _candidate_dirs() -> list[Path]:
    """The package directory, then the build directory the compiled files are symlinked from."""
    pkg = _package_dir()
    dirs = [pkg]
    lib = pkg / _library_name()
    if lib.exists():
        real = Path(os.path.realpath(lib)).parent
        if real != pkg:
            dirs.append(real)
    return dirs


def _jax_library_name() -> str:
    if sys.platform == "win32":
        return "fastpenalty_jax.dll"
    return "libfastpenalty_jax.dylib" if sys.platform == "darwin" else "libfastpenalty_jax.so"


def jax_library_path() -> str | None:
    """libfastpenalty_jax (the XLA FFI handlers of fastpenalty.jax), or None when this build has
    none. Found beside fastpenalty._core, or in the build directory _core is linked from; looking
    imports neither jax nor the library."""
    core = Path(_core_file())
    for d in (core.parent, Path(os.path.realpath(core)).parent):
        if (d / _jax_library_name()).exists():
            return str(d / _jax_library_name())
    return None


def library_path() -> str:
    """The path of the C ABI shared library that fastpenalty._core itself uses."""
    lib = _package_dir() / _library_name()
    if not lib.exists():
        raise FileNotFoundError(f"{lib} is missing: this fastpenalty installation is incomplete")
    return str(lib)


def cmake_dir() -> str:
    """The directory holding fastpenaltyConfig.cmake, for find_package(fastpenalty)."""
    for d in _candidate_dirs():
        if (d / "cmake" / _CONFIG).exists():
            return str(d / "cmake")
    raise FileNotFoundError(
        "fastpenaltyConfig.cmake was not found beside the compiled library "
        f"({', '.join(str(d / 'cmake') for d in _candidate_dirs())}): install fastpenalty with pip, or "
        "re-run cmake in the development build directory"
    )


def include_dir() -> str:
    """The directory to add to the include path for #include <fastpenalty/fastpenalty.h>."""
    pkg = _package_dir()
    source_tree = Path(__file__).resolve().parent.parent.parent / "csrc" / "include"
    for d in (pkg / "include", source_tree):
        if (d / _HEADER).exists():
            return str(d)
    raise FileNotFoundError(f"{_HEADER} was not found under {pkg / 'include'} or {source_tree}")


__all__ = ["cmake_dir", "include_dir", "library_path", "jax_library_path"]
