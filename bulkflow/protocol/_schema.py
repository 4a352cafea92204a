"""The ``data_schema`` / ``data_schema_info`` model: what each row position means."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from bulkflow._exceptions import PageParseError, shorten

#: The two positions every row starts with (``saleslayer-1.18.md`` §2.5).
LEADING = ("STATUS", "ID")


class Kind(Enum):
    """How a column's values are read."""

    REFERENCE = "reference"  # ID_PARENT, ID_<table>: an id or a list of ids
    SCALAR = "scalar"  # string, number, boolean, datetime, ...
    LIST = "list"  # a list of strings (or one string)
    MEDIA = "media"  # image or file tuples
    TABLE = "table"  # embedded table: arbitrary JSON


@dataclass(frozen=True)
class Column:
    """One position of a table's rows, from ``STATUS`` and ``ID`` onwards.

    ``labels`` are a media column's sub-labels from index 2 on (size codes such
    as ``ORG`` and ``THM``, or the file slot); ``joins`` is the table an
    ``ID_*`` column points at (``None`` for ``ID_PARENT``, which points at its
    own table).
    """

    name: str
    position: int
    type: str
    kind: Kind
    basename: str | None = None
    language: str | None = None
    labels: tuple[str, ...] = ()
    joins: str | None = None


@dataclass(frozen=True)
class TableSchema:
    """The columns of one table, in row order."""

    name: str
    columns: tuple[Column, ...]

    @property
    def width(self) -> int:
        """The number of positions of a full row, ``STATUS`` and ``ID`` included."""
        return len(LEADING) + len(self.columns)

    def column(self, name: str) -> Column:
        """Return the column called ``name``; ``KeyError`` when there is none."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def multilingual(self) -> dict[str, dict[str, str]]:
        """Map each base name to ``{language: column name}``."""
        groups: dict[str, dict[str, str]] = {}
        for column in self.columns:
            if column.basename and column.language:
                groups.setdefault(column.basename, {})[column.language] = column.name
        return groups


def _label(entry: Any) -> str:
    """A media sub-label is a string or an object whose ``field`` is the label."""
    if isinstance(entry, Mapping):
        return str(entry.get("field", ""))
    return str(entry)


def _kind(name: str, type_: str) -> Kind:
    if name.startswith("ID_"):
        return Kind.REFERENCE
    if type_ in ("image", "file"):
        return Kind.MEDIA
    if type_ == "list":
        return Kind.LIST
    if type_ == "table":
        return Kind.TABLE
    return Kind.SCALAR


def _column(position: int, entry: Any, info: Mapping[str, Any], table: str) -> Column:
    labels: tuple[str, ...] = ()
    if isinstance(entry, Mapping):
        if len(entry) != 1:
            raise PageParseError(
                f"data_schema[{table!r}][{position}] must be a column name or a "
                f"one-key media entry, got {shorten(entry)}",
                where=f"data_schema of {table}",
                value=entry,
            )
        ((name, sub_labels),) = entry.items()
        labels = tuple(_label(label) for label in list(sub_labels)[len(LEADING) :])
    elif isinstance(entry, str):
        name = entry
    else:
        raise PageParseError(
            f"data_schema[{table!r}][{position}] is {shorten(entry)}, "
            "not a column name",
            where=f"data_schema of {table}",
            value=entry,
        )
    props = info.get(name) or {}
    type_ = str(props.get("type", "image" if labels else "string"))
    kind = _kind(name, type_)
    if labels:
        kind = Kind.MEDIA
    joins = None
    if kind is Kind.REFERENCE and name != "ID_PARENT":
        joins = str(props.get("table_key") or name[len("ID_") :])
    return Column(
        name=name,
        position=position,
        type=type_,
        kind=kind,
        basename=props.get("basename"),
        language=props.get("language_code"),
        labels=labels,
        joins=joins,
    )


def table_schema(
    name: str, data_schema: list[Any], info: Mapping[str, Any] | None
) -> TableSchema:
    """Build a :class:`TableSchema` from the wire ``data_schema[name]`` list.

    Raises:
        PageParseError: when the list does not start with ``STATUS``, ``ID`` or
            holds something that is neither a name nor a media entry.
    """
    if not isinstance(data_schema, list) or [
        str(entry).upper() for entry in data_schema[: len(LEADING)]
    ] != list(LEADING):
        raise PageParseError(
            f"data_schema[{name!r}] must start with STATUS, ID; got "
            f"{shorten(data_schema)}",
            where=f"data_schema of {name}",
            value=data_schema,
        )
    info = info if isinstance(info, Mapping) else {}
    columns = tuple(
        _column(position, entry, info, name)
        for position, entry in enumerate(data_schema)
        if position >= len(LEADING)
    )
    names = [*LEADING, *(column.name for column in columns)]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise PageParseError(
            f"data_schema[{name!r}] names {', '.join(repeated)} more than once",
            where=f"data_schema of {name}",
            value=data_schema,
        )
    return TableSchema(name=name, columns=columns)


def schemas(
    data_schema: Mapping[str, Any], data_schema_info: Mapping[str, Any] | None
) -> dict[str, TableSchema]:
    """Build the schema of every table of a page header.

    PHP serialises an empty map as ``[]``; both are read as "no tables".
    """
    if isinstance(data_schema, list) and not data_schema:
        return {}
    if not isinstance(data_schema, Mapping):
        raise PageParseError(
            f"data_schema must be an object, got {shorten(data_schema)}",
            where="page header",
            value=data_schema,
        )
    info = data_schema_info if isinstance(data_schema_info, Mapping) else {}
    return {
        table: table_schema(table, entries, info.get(table))
        for table, entries in data_schema.items()
    }
