"""How the emulator reads the fields of an imported item, by their column's type.

Form bodies carry only text, so numbers and booleans are parsed; an empty
value (or ``None``, or an empty list) means "no value": ``None``, but ``[]``
for media and list references and ``0`` for a single reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from bulkflow._exceptions import shorten
from bulkflow.protocol import Column, Kind, TableSchema

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class ItemError(Exception):
    """One item cannot be applied; the message says why."""


class Unresolved(ItemError):
    """A REF names no item yet; it may appear later in the same call."""


def column_of(schema: TableSchema, name: str, field_name: str) -> Column:
    """The column ``name`` of ``schema``; an :class:`ItemError` names the others."""
    if name in ("ID", "STATUS"):
        raise ItemError(f"field {field_name!r} cannot be set; items match by REF")
    try:
        return schema.column(name)
    except KeyError:
        known = ", ".join(column.name for column in schema.columns)
        raise ItemError(
            f"unknown field {field_name!r}; {schema.name} has: {shorten(known, 300)}"
        ) from None


def ref_of(raw: Any) -> str:
    """An item's REF as text; an :class:`ItemError` when it has none."""
    if not isinstance(raw, dict):
        raise ItemError(f"an item must be an object, got {shorten(raw)}")
    ref = raw.get("REF")
    if ref is None or ref == "" or isinstance(ref, list | dict):
        raise ItemError("no REF; every item needs its reference")
    return str(ref)


def defaults(schema: TableSchema) -> list[Any]:
    """The values of a new item before its fields are set."""
    return [empty(column) for column in schema.columns]


def empty(column: Column) -> Any:
    """A column's "no value": ``[]`` for media and list references, ``0`` for one."""
    if column.kind is Kind.MEDIA:
        return []
    if column.kind is Kind.REFERENCE:
        return [] if column.type == "list" else 0
    return None


def blank(value: Any) -> bool:
    """True for ``None``, ``""`` and empty containers: what a form sends as empty."""
    return value is None or value == "" or value == [] or value == {}


def members(value: Any) -> list[Any]:
    """A list as it is; a map from a form body with gaps in its indexes, by key."""
    if isinstance(value, dict):
        return [value[key] for key in sorted(value, key=_index_key)]
    return value if isinstance(value, list) else [value]


def _index_key(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (2**62, key)


def references(column: Column, value: Any, refs: dict[str, int], target: str) -> Any:
    """A ``REF_*`` value as the ids of the items it names.

    Raises:
        Unresolved: a REF that names no item of ``target`` (yet).
    """
    if blank(value):
        return empty(column)

    def lookup(ref: Any) -> int:
        """The id of the item ``ref``."""
        found = refs.get(str(ref))
        if found is None:
            raise Unresolved(
                f"REF{column.name[len('ID') :]}: no {target} item has REF {ref!r}"
            )
        return found

    if isinstance(value, list | dict):
        return [lookup(ref) for ref in members(value) if not blank(ref)]
    return [lookup(value)] if column.type == "list" else lookup(value)


def coerce(column: Column, value: Any, next_file_id: Callable[[], int]) -> Any:
    """Read a field's value by its column's type.

    Raises:
        ValueError: a value the column cannot hold.
    """
    if column.kind is Kind.REFERENCE:
        return _ids(column, value)
    if column.kind is Kind.MEDIA:
        return _media(value, len(column.labels), next_file_id)

    if blank(value):
        return None
    if column.kind is Kind.LIST:
        return members(value)
    if column.kind is Kind.TABLE:
        return value
    return _scalar(column.type, value)


def _ids(column: Column, value: Any) -> Any:
    """An ``ID_*`` value given as ids: a list stays a list."""
    if blank(value):
        return empty(column)
    if isinstance(value, list | dict):
        return [_integer(member) for member in members(value)]
    return [_integer(value)] if column.type == "list" else _integer(value)


def _scalar(type_: str, value: Any) -> Any:
    if isinstance(value, list | dict):
        raise ValueError(f"expects one value, got {shorten(value)}")
    if type_ in ("numeric", "key"):
        return _number(value)
    if type_ == "boolean":
        return _boolean(value)
    if isinstance(value, bool):
        return int(value)
    return value if isinstance(value, str) else str(value)


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value

    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{shorten(value)} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{shorten(value)} is not a finite number")
    return number


def _integer(value: Any) -> int:
    number = _number(value)
    if number != int(number):
        raise ValueError(f"{shorten(value)} is not an id")
    return int(number)


def _boolean(value: Any) -> int:
    text = str(value).strip().lower()
    if value is True or text in _TRUE:
        return 1
    if value is False or text in _FALSE:
        return 0
    raise ValueError(f"{shorten(value)} is not a boolean (1/0, true/false)")


def _media(value: Any, sizes: int, next_file_id: Callable[[], int]) -> list[Any]:
    if blank(value):
        return []
    files: list[Any] = []
    for entry in members(value):
        if isinstance(entry, str) and entry:
            files.append(["M", next_file_id(), *([entry] * max(1, sizes))])
        elif isinstance(entry, list | dict) and len(entry) >= 2:
            status, file_id, *urls = members(entry)
            files.append([str(status or "M"), _file_id(file_id), *urls])
        else:
            raise ValueError(
                f"media entry {shorten(entry)} is neither a URL nor a tuple"
            )
    return files


def _file_id(value: Any) -> Any:
    text = str(value)
    return int(text) if text.isdigit() else value
