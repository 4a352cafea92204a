"""Where import items come from: JSONL, CSV, Python iterables (replicas: ``_replica``).

Every source yields :class:`ImportItem` values in order and raises
:class:`DataError` at the first bad record, naming the file, the line (or
row) and the value. Items yielded before the error are kept: the import
sends them, then stops with the error.

The module passes 400 lines by keeping the three readers together:
they share the record rules (:func:`item_from_record`) and the thread pump.

Over 400 lines: four kinds of source, each with errors that name file,
line and value.
"""

from __future__ import annotations

import csv
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio

from bulkflow._exceptions import DataError, UsageError, shorten
from bulkflow._json import loads_exact

if TYPE_CHECKING:
    from bulkflow.import_._replica import MediaMode

#: The field that marks a source item as a deletion.
DELETE_FIELD = "_delete"

#: Items read per trip to a worker thread (file and SQLite sources).
READ_CHUNK = 512

_TRUE = (True, 1, "1", "true", "yes")


@dataclass(frozen=True)
class ImportItem:
    """One item to import: its table, its fields (``REF`` among them), upsert or delete.

    Attributes:
        table: the table it goes to (``catalogue``, ``products``...).
        fields: field name to value, as the import connector names them.
        delete: True for a deletion; only ``REF`` is sent then.
        where: where the item came from, for messages ("items.jsonl line 7").
    """

    table: str
    fields: dict[str, Any]
    delete: bool = False
    where: str = field(default="", compare=False)

    @property
    def ref(self) -> Any:
        """The item's reference."""
        return self.fields.get("REF")


@runtime_checkable
class Source(Protocol):
    """Anything that yields import items."""

    description: str

    def aiter_items(self) -> AsyncIterator[ImportItem]:
        """Yield the items in order; raise :class:`DataError` at a bad record."""
        ...


def item_from_record(
    record: Any, *, table: str | None, where: str, delete: bool = False
) -> ImportItem:
    """Build an item from ``{"table": t, "item": {...}}`` or a plain item.

    Raises:
        DataError: no table, no REF, or a record that is not an object.
    """
    if not isinstance(record, Mapping):
        raise DataError(
            f"{where}: expected an object, got {shorten(record)}",
            where=where,
            value=record,
        )

    body: Any = record
    if isinstance(record.get("item"), Mapping) and "table" in record:
        table, body = record["table"], record["item"]
        delete = delete or record.get(DELETE_FIELD) in _TRUE

    if not isinstance(table, str) or not table:
        raise DataError(
            f"{where}: no table for this item; write lines as "
            '{"table": "products", "item": {...}} or pass --table',
            where=where,
            value=record,
        )

    fields = dict(body)
    delete = delete or fields.pop(DELETE_FIELD, None) in _TRUE
    ref = fields.get("REF")
    if ref is None or ref == "" or not isinstance(ref, str | int):
        raise DataError(
            f"{where}: item of {table!r} has no usable REF ({shorten(ref)}); every "
            f"item needs its reference: {shorten(dict(body))}",
            where=where,
            value=dict(body),
        )

    if delete:
        fields = {"REF": ref}
    return ImportItem(table, fields, delete, where)


async def aiter_in_thread(
    iterator: Iterator[ImportItem], chunk: int = READ_CHUNK
) -> AsyncIterator[ImportItem]:
    """Drive a blocking iterator in a worker thread, ``chunk`` items per trip."""

    def take() -> tuple[list[ImportItem], BaseException | None]:
        items: list[ImportItem] = []
        try:
            for item in iterator:
                items.append(item)
                if len(items) >= chunk:
                    break
        except (DataError, UsageError) as exc:
            # The items read before the bad record are handed out first.
            return items, exc
        return items, None

    try:
        while True:
            items, error = await anyio.to_thread.run_sync(take)
            for item in items:
                yield item
            if error is not None:
                raise error
            if not items:
                return
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


# -- JSONL --------------------------------------------------------------------


class JsonlSource:
    """One JSON object per line: ``{"table": t, "item": {...}}`` or a plain item.

    Args:
        path: the file.
        table: the table of plain items (lines without ``table``).
        delete: treat every item as a deletion.
    """

    def __init__(
        self, path: str | Path, *, table: str | None = None, delete: bool = False
    ) -> None:
        self.path = Path(path)
        self.table = table
        self.delete = delete
        self.description = str(self.path)

    def __repr__(self) -> str:
        return f"JsonlSource({str(self.path)!r}, table={self.table!r})"

    def aiter_items(self) -> AsyncIterator[ImportItem]:
        """Yield the file's items in order."""
        return aiter_in_thread(self.iter_items())

    def iter_items(self) -> Iterator[ImportItem]:
        """The same, blocking."""
        with _open_file(self.path, "rb") as handle:
            for number, line in enumerate(handle, 1):
                text = line.strip().removeprefix(b"\xef\xbb\xbf")
                if not text:
                    continue
                where = f"{self.path} line {number}"
                yield item_from_record(
                    _json_line(text, where, number),
                    table=self.table,
                    where=where,
                    delete=self.delete,
                )


def _json_line(text: bytes, where: str, number: int) -> Any:
    try:
        return loads_exact(text)
    except ValueError as exc:
        shown = shorten(text.decode("utf-8", "replace"))
        raise DataError(
            f"{where}: not JSON ({exc}): {shown}; fix or remove the line",
            where=where,
            offset=number,
            value=shown,
        ) from exc


def _open_file(path: Path, mode: str, **kwargs: Any) -> Any:
    try:
        return path.open(mode, **kwargs)
    except OSError as exc:
        raise UsageError(f"--from {path}: cannot open it ({exc.strerror})") from exc


# -- CSV ----------------------------------------------------------------------


def parse_mapping(text: str) -> dict[str, str]:
    """Read ``"sku=REF,name=product_name_en,cats=REF_catalogue[]"``.

    A field name ending in ``[]`` takes a list, split on ``|``.

    Raises:
        UsageError: naming the pair that has no ``=``.
    """
    mapping: dict[str, str] = {}
    for pair in text.split(","):
        column, equals, name = pair.partition("=")
        if not equals or not column.strip() or not name.strip():
            raise UsageError(
                f"--map {text!r}: {pair!r} is not column=field; write e.g. "
                "--map sku=REF,name=product_name_en"
            )
        mapping[column.strip()] = name.strip()
    return mapping


class CsvSource:
    """A CSV file with a header row; a mapping names the field of each column.

    Args:
        path: the file (UTF-8, a BOM is allowed).
        table: the table every row goes to.
        mapping: CSV column → field; a field ending in ``[]`` takes a list
            split on ``list_separator``. Without a mapping every column is a
            field of its own name. ``REF`` must be among the fields, and a
            column mapped to ``_delete`` marks deletions.
        delete: treat every row as a deletion.

    An empty cell is sent as an empty value, which clears the field; leave a
    column out of the mapping to keep the field as it is.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        table: str,
        mapping: Mapping[str, str] | None = None,
        delete: bool = False,
        list_separator: str = "|",
        delimiter: str = ",",
    ) -> None:
        self.path = Path(path)
        self.table = table
        self.mapping = dict(mapping) if mapping else None
        self.delete = delete
        self.list_separator = list_separator
        self.delimiter = delimiter
        self.description = str(self.path)

    def __repr__(self) -> str:
        return f"CsvSource({str(self.path)!r}, table={self.table!r})"

    def aiter_items(self) -> AsyncIterator[ImportItem]:
        """Yield one item per data row."""
        return aiter_in_thread(self.iter_items())

    def iter_items(self) -> Iterator[ImportItem]:
        """The same, blocking."""
        with _open_file(self.path, "r", newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=self.delimiter)
            try:
                yield from self._rows(reader)
            except UnicodeDecodeError as exc:
                where = f"{self.path} near line {reader.line_num + 1}"
                raise DataError(
                    f"{where}: not UTF-8 ({exc.reason}); convert the file to UTF-8",
                    where=where,
                    offset=reader.line_num + 1,
                ) from exc

    def _rows(self, reader: Any) -> Iterator[ImportItem]:
        header = next(reader, None)
        if not header:
            raise DataError(
                f"{self.path}: empty file, no header row", where=str(self.path)
            )

        plan = self._plan(header)
        for row in reader:
            if not row:
                continue
            where = f"{self.path} line {reader.line_num}"
            if len(row) != len(header):
                raise DataError(
                    f"{where}: {len(row)} cells where the header has {len(header)}: "
                    f"{shorten(row)}",
                    where=where,
                    offset=reader.line_num,
                    value=row,
                )

            fields: dict[str, Any] = {}
            for index, name, is_list in plan:
                cell = row[index]
                fields[name] = _split(cell, self.list_separator) if is_list else cell
            yield item_from_record(
                fields, table=self.table, where=where, delete=self.delete
            )

    def _plan(self, header: list[str]) -> list[tuple[int, str, bool]]:
        """Per used column: its position, its field and whether it is a list."""
        mapping = self.mapping or {name: name for name in header}
        missing = [column for column in mapping if column not in header]
        if missing:
            raise UsageError(
                f"--map names columns {', '.join(map(repr, missing))} that "
                f"{self.path} does not have; its columns are: {', '.join(header)}"
            )

        plan = []
        for column, name in mapping.items():
            is_list = name.endswith("[]")
            plan.append((header.index(column), name.removesuffix("[]"), is_list))

        if "REF" not in {name for _, name, _ in plan}:
            raise UsageError(
                f"{self.path}: no column gives REF, the reference every item "
                "needs; map one with --map column=REF"
            )
        return plan


def _split(cell: str, separator: str) -> list[str]:
    return [part.strip() for part in cell.split(separator)] if cell else []


# -- Python iterables -----------------------------------------------------------


class IterableSource:
    """Items from a sync or async iterable, for library users.

    Members may be :class:`ImportItem` values, ``{"table": t, "item": {...}}``
    records or plain items (then ``table`` names their table).
    """

    def __init__(
        self,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        table: str | None = None,
        delete: bool = False,
        description: str = "items",
    ) -> None:
        self._items = items
        self.table = table
        self.delete = delete
        self.description = description

    def __repr__(self) -> str:
        return f"IterableSource({self.description!r}, table={self.table!r})"

    async def aiter_items(self) -> AsyncIterator[ImportItem]:
        """Yield the members as items, in order."""
        if isinstance(self._items, AsyncIterable):
            number = 0
            async for member in self._items:
                number += 1
                yield self._item(member, number)
            return
        for number, member in enumerate(self._items, 1):
            yield self._item(member, number)

    def _item(self, member: Any, number: int) -> ImportItem:
        if isinstance(member, ImportItem):
            return member
        where = f"{self.description} item {number}"
        return item_from_record(
            member, table=self.table, where=where, delete=self.delete
        )


def as_source(
    items: Source | Iterable[Any] | AsyncIterable[Any], *, table: str | None = None
) -> Source:
    """A source as it is; an iterable wrapped in :class:`IterableSource`."""
    if isinstance(items, Source):
        return items
    return IterableSource(items, table=table)


def open_source(
    spec: str,
    *,
    table: str | None = None,
    mapping: Mapping[str, str] | None = None,
    delete: bool = False,
    media: MediaMode = "urls",
) -> Source:
    """The source ``--from`` names: ``sqlite:///PATH``, a ``.jsonl`` or a ``.csv`` file.

    Raises:
        UsageError: for another form, or a missing ``--table``.
    """
    prefix = "sqlite:///"
    if spec.startswith(prefix) and len(spec) > len(prefix):
        if not table:
            raise UsageError(f"--from {spec}: name the replica table with --table")
        from bulkflow.import_._replica import SqliteSource

        return SqliteSource(spec[len(prefix) :], table, media=media, delete=delete)
    suffix = Path(spec).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return JsonlSource(spec, table=table, delete=delete)
    if suffix in (".csv", ".tsv"):
        if not table:
            raise UsageError(f"--from {spec}: name the table of its rows with --table")
        delimiter = "\t" if suffix == ".tsv" else ","
        return CsvSource(
            spec, table=table, mapping=mapping, delete=delete, delimiter=delimiter
        )
    raise UsageError(
        f"--from {spec!r}: give a .jsonl, .csv or .tsv file, or sqlite:///PATH "
        "of a replica made by bulkflow export"
    )
