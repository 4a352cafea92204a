"""Request signatures of API 1.18: ``key256`` (SHA-256) and the legacy ``key``."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Literal

Algorithm = Literal["sha256", "sha1"]

#: The parameter name each algorithm's hex digest travels under.
KEY_PARAM: dict[Algorithm, str] = {"sha256": "key256", "sha1": "key"}

#: ``unique`` is PHP's ``mt_rand()`` range: 0 to 2**31 - 1.
MAX_UNIQUE = 2**31 - 1


def signature(
    code: str, secret: str, time: int, unique: int, algorithm: Algorithm = "sha256"
) -> str:
    """Return the lowercase hex digest of ``code + secret + time + unique``.

    The four parts are concatenated without separators, the numbers as
    decimal strings (``saleslayer-1.18.md`` §1.2).
    """
    message = f"{code}{secret}{time}{unique}".encode()
    return hashlib.new(algorithm, message).hexdigest()


def signed_params(
    code: str,
    secret: str,
    *,
    time: int,
    unique: int | None = None,
    algorithm: Algorithm = "sha256",
) -> dict[str, str]:
    """Return the authentication parameters of one request.

    A fresh ``unique`` is drawn when none is given; every request must be
    signed anew, because the emulator (and, we assume, the service) refuses a
    ``unique`` it has already seen within the clock window.
    """
    if unique is None:
        unique = secrets.randbelow(MAX_UNIQUE + 1)
    return {
        "code": code,
        "time": str(time),
        "unique": str(unique),
        KEY_PARAM[algorithm]: signature(code, secret, time, unique, algorithm),
    }


def verify(
    code: str, secret: str, time: int, unique: int, key: str, algorithm: Algorithm
) -> bool:
    """Tell whether ``key`` is the signature of the other parts, in constant time."""
    expected = signature(code, secret, time, unique, algorithm)
    # Compared as bytes: compare_digest refuses str with non-ASCII characters,
    # and a forged key may well contain some.
    return hmac.compare_digest(expected.encode(), key.lower().encode())
