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


def dumps_exact(value: Any, *, sort_keys: bool = False) -> bytes:
    """``orjson.dumps``, falling back to the standard library where orjson stops.

    orjson refuses integers beyond 64 bits and nesting past 254 levels; the
    standard library writes both (up to Python's recursion limit), in the
    same compact form.

    Raises:
        ValueError: a value that neither can write (RecursionError is one
            of them, re-raised as ValueError).
    """
    option = orjson.OPT_SORT_KEYS if sort_keys else 0
    try:
        return orjson.dumps(value, option=option, default=str)
    except TypeError:
        pass
    try:
        text = json.dumps(
            value,
            sort_keys=sort_keys,
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )
    except RecursionError:
        raise ValueError("nested too deep to write as JSON") from None
    return text.encode()
