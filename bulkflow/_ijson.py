"""Which ijson backend parses pages, and a loud warning when it is not the C one."""

from __future__ import annotations

import warnings

import ijson

#: ijson's backend written in C; the pure-Python ones are 15 to 20 times slower.
FAST_BACKEND = "yajl2_c"


def backend_warning() -> str | None:
    """Return a warning when ijson's C backend is not in use, else ``None``."""
    if ijson.backend == FAST_BACKEND:
        return None
    return (
        f"ijson is using its {ijson.backend!r} backend, not {FAST_BACKEND!r}: "
        "parsing will be 15-20 times slower. Install a binary wheel of ijson "
        "(pip install --force-reinstall --only-binary ijson ijson) or the "
        "yajl2 C library and reinstall ijson."
    )


def warn_if_slow() -> None:
    """Emit the backend warning as a ``RuntimeWarning`` (once per process)."""
    message = backend_warning()
    if message:
        warnings.warn(message, RuntimeWarning, stacklevel=2)
