"""Decoding a wire row into an item: status, ID, references, fields and media."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bulkflow._exceptions import RowDecodeError, shorten
from bulkflow.protocol._schema import Column, Kind, TableSchema

DELETED = "D"


@dataclass
class Item:
    """The decoded form of one row.

    ``references`` holds the ``ID_*`` columns, each as a list of ids (a scalar
    id becomes a one-element list, ``0`` and empty values become ``[]``);
    ``fields`` the other columns by name, with multilingual columns also
    grouped under ``translations[basename][language]``; ``media`` maps a
    media column to ``{file_id: {label: url}}``.
    """

    table: str
    id: int | str
    deleted: bool
    status: str
    references: dict[str, list[int | str]] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    translations: dict[str, dict[str, Any]] = field(default_factory=dict)
    media: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)


def reference_ids(value: Any) -> list[int | str]:
    """Normalise an ``ID_*`` value: scalar or list, ``0``/``""``/``None`` mean none."""
    if value is None or value == "" or value == 0 or value == "0":
        return []
    if isinstance(value, list):
        return [member for member in value if member not in (None, "", 0, "0")]
    if isinstance(value, int | str):
        return [value]
    raise ValueError(f"reference {shorten(value)} is neither an id nor a list")


def list_values(value: Any) -> list[Any]:
    """A list column: a list as it is, one string as one value, empty as none."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    return [value]


def media_values(value: Any, labels: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Re-key media tuples ``[status, file_id, url...]`` as ``{file_id: {label: url}}``.

    A value whose first element is ``"U"`` (unchanged) or that is empty reads
    as no files, as the SDK does.
    """
    if not value or not isinstance(value, list) or value[0] == "U":
        return {}
    files: dict[str, dict[str, str]] = {}
    for entry in value:
        if not isinstance(entry, list) or len(entry) < 2:
            raise ValueError(f"media tuple {shorten(entry)} has no file id")
        pairs = zip(labels, entry[2:], strict=False)
        urls = {label: url for label, url in pairs if url}
        files[str(entry[1])] = urls
    return files


def _put(item: Item, column: Column, value: Any) -> None:
    if column.kind is Kind.REFERENCE:
        item.references[column.name] = reference_ids(value)
    elif column.kind is Kind.MEDIA:
        item.media[column.name] = media_values(value, column.labels)
    elif column.kind is Kind.LIST:
        item.fields[column.name] = list_values(value)
    else:
        item.fields[column.name] = value
    if column.basename and column.language:
        group = item.translations.setdefault(column.basename, {})
        group[column.language] = value


def decode_row(schema: TableSchema, row: Any, *, index: int | None = None) -> Item:
    """Decode one wire row of ``schema``'s table.

    A ``D`` row needs only its status and ID; other rows must be as wide as
    the schema (a shorter row is refused rather than padded, because a
    shifted row would store values under the wrong columns).

    Raises:
        RowDecodeError: with the table, the row index and the offending row.
    """
    where = f"table {schema.name!r}" + (f", row {index}" if index is not None else "")
    if not isinstance(row, list) or len(row) < 2:
        raise RowDecodeError(
            f"{where}: a row must be a list [status, ID, ...], got {shorten(row)}",
            where=where,
            offset=index,
            value=row,
        )
    status, id_ = str(row[0]), row[1]
    item = Item(schema.name, id_, status == DELETED, status)
    if item.deleted:
        return item
    if len(row) != schema.width:
        raise RowDecodeError(
            f"{where}: row has {len(row)} values, the schema has {schema.width}: "
            f"{shorten(row)}",
            where=where,
            offset=index,
            value=row,
        )
    try:
        for column in schema.columns:
            _put(item, column, row[column.position])
    except ValueError as exc:
        raise RowDecodeError(
            f"{where}: {exc}", where=where, offset=index, value=row
        ) from exc
    return item
