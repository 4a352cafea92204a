"""JSON that keeps every integer exact.

orjson reads integers up to 64 bits and turns wider ones into floats without
a word (``123456789012345678901`` becomes ``1.2345678901234568e+20``). Text
with a run of 19 digits or more, the only place such an integer can hide, is
read by the standard library's ``json`` instead, which keeps integers of any
width; everything else goes to orjson.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

#: Every digit becomes "0", every other byte a space: a cheap look for long numbers.
_DIGITS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_DIGITS = b"0" * 19


def has_long_number(text: bytes) -> bool:
    """True when ``text`` holds a run of 19 digits or more (in a number or not)."""
    return _LONG_DIGITS in text.translate(_DIGITS)


def loads_exact(text: bytes) -> Any:
    """``orjson.loads``, but integers beyond 64 bits stay integers.

    Raises:
        ValueError: text that is not JSON (``orjson.JSONDecodeError`` or
            ``json.JSONDecodeError``, both ValueErrors).
    """
    if has_long_number(text):
        return json.loads(text)
    return orjson.loads(text)
