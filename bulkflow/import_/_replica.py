"""A table of a replica made by ``bulkflow export``, read back as import items.

The replica's ``ID`` is dropped (the target instance numbers its own items)
and each reference column ``ID_<x>`` becomes ``REF_<x>``, holding the REF of
the item it pointed at, a list staying a list: ``ID_PARENT`` → ``REF_PARENT``,
``ID_catalogue`` → ``REF_catalogue``, ``ID_products`` → ``REF_products``. The
import connector maps those fields to the references of its tables, as the
emulator does. A reference to an item the replica does not hold is a
:class:`DataError`: export the referenced table into the same database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal

import orjson

from bulkflow._exceptions import DataError, UsageError
from bulkflow.import_._sources import ImportItem, aiter_in_thread, item_from_record

MediaMode = Literal["urls", "tuples"]


class SqliteSource:
    """A table of a replica made by ``bulkflow export``, as import items.

    Args:
        path: the replica's database file.
        table: the table to read.
        media: ``"urls"`` sends each file of a media column as the URL of its
            first size (what the service imports); ``"tuples"`` sends the
            exported ``[status, file_id, url...]`` tuples unchanged, which the
            emulator stores as they are (an exact round trip).
        delete: send every row as a deletion.

    Rows come by ``ID``; in a table with ``ID_PARENT``, parents come before
    their children so that a child's ``REF_PARENT`` names a known item.
    Text that holds a JSON list or object is read as one: the replica keeps
    list and media columns as JSON text (a text field whose value happens to
    be JSON is read the same way).
    """

    def __init__(
        self,
        path: str | Path,
        table: str,
        *,
        media: MediaMode = "urls",
        delete: bool = False,
    ) -> None:
        self.path = Path(path)
        self.table = table
        self.media = media
        self.delete = delete
        self.description = f"sqlite:///{self.path} table {table}"

    def __repr__(self) -> str:
        return f"SqliteSource({str(self.path)!r}, {self.table!r})"

    def aiter_items(self) -> AsyncIterator[ImportItem]:
        """Yield one item per replica row."""
        return aiter_in_thread(self.iter_items())

    def iter_items(self) -> Iterator[ImportItem]:
        """The same, blocking."""
        if not self.path.is_file():
            raise UsageError(f"--from sqlite:///{self.path}: no such database file")
        db = sqlite3.connect(
            f"file:{self.path}?mode=ro", uri=True, check_same_thread=False
        )
        try:
            reader = _ReplicaReader(db, self)
            yield from reader.items()
        except sqlite3.DatabaseError as exc:
            raise UsageError(
                f"--from sqlite:///{self.path}: cannot read it as a replica ({exc})"
            ) from exc
        finally:
            db.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _ReplicaReader:
    """Reads one replica table and turns its references into REFs."""

    def __init__(self, db: sqlite3.Connection, source: SqliteSource) -> None:
        self.db = db
        self.source = source
        self.table = source.table

        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master")]
        if self.table not in tables:
            feed = sorted(name for name in tables if not name.startswith("_bulkflow"))
            raise UsageError(
                f"--table {self.table!r}: the replica {source.path} has no such "
                f"table; it has: {', '.join(feed) or 'none'}"
            )

        info = db.execute(f"PRAGMA table_info({_quote(self.table)})").fetchall()
        self.columns = [
            row[1]
            for row in info
            if row[1] != "ID" and not str(row[1]).startswith("_bulkflow")
        ]
        if "REF" not in self.columns:
            raise UsageError(
                f"--table {self.table!r}: the replica table has no REF column, so "
                "its rows cannot be matched on import"
            )

        self.targets = {
            name: self._target(name, tables)
            for name in self.columns
            if name.startswith("ID_")
        }
        self._refs: dict[tuple[str, Any], Any] = {}

    def _target(self, column: str, tables: list[str]) -> str:
        target = self.table if column == "ID_PARENT" else column[len("ID_") :]
        if target not in tables:
            raise UsageError(
                f"{self.source.path}: {self.table}.{column} points at table "
                f"{target!r}, which the replica does not hold; export it too"
            )
        return target

    def items(self) -> Iterator[ImportItem]:
        select = ", ".join(_quote(name) for name in ["ID", *self.columns])
        query = f"SELECT {select} FROM {_quote(self.table)}"
        if "ID_PARENT" in self.columns:
            for id_ in self._parents_first():
                row = self.db.execute(f'{query} WHERE "ID"=?', (id_,)).fetchone()
                yield self._item(row)
            return
        for row in self.db.execute(f'{query} ORDER BY "ID"'):
            yield self._item(row)

    def _parents_first(self) -> list[Any]:
        """Every ID, each after its parent (depth first, in ID order)."""
        children: dict[Any, list[Any]] = {}
        ids = []
        query = f'SELECT "ID", "ID_PARENT" FROM {_quote(self.table)} ORDER BY "ID"'
        for id_, parent in self.db.execute(query):
            ids.append(id_)
            first = _ids(parent)
            children.setdefault(first[0] if first else None, []).append(id_)

        known = set(ids)
        roots = [i for p, kids in children.items() if p not in known for i in kids]

        order: list[Any] = []
        stack = sorted(roots, reverse=True)
        while stack:
            id_ = stack.pop()
            order.append(id_)
            stack.extend(sorted(children.get(id_, ()), reverse=True))

        # Items caught in a parent cycle are never reached from a root; they
        # come last, and the import reports what it cannot resolve.
        placed = set(order)
        return order + [id_ for id_ in ids if id_ not in placed]

    def _item(self, row: tuple[Any, ...]) -> ImportItem:
        id_, values = row[0], row[1:]
        where = f"{self.source.path} table {self.table} ID {id_}"
        fields: dict[str, Any] = {}
        for name, value in zip(self.columns, values, strict=True):
            if name in self.targets:
                fields["REF" + name[len("ID") :]] = self._references(name, value, where)
            else:
                fields[name] = self._value(_json_text(value))
        fields = {"REF": fields.pop("REF"), **fields}
        return item_from_record(
            fields, table=self.table, where=where, delete=self.source.delete
        )

    def _value(self, value: Any) -> Any:
        if self.source.media == "urls" and _is_media(value):
            return [entry[2] for entry in value if len(entry) > 2 and entry[2]]
        return value

    def _references(self, column: str, value: Any, where: str) -> Any:
        """An ``ID_*`` value with each id replaced by the REF of its item."""
        value = _json_text(value)
        if isinstance(value, list):
            return [self._ref(column, id_, where) for id_ in _ids(value)]
        ids = _ids(value)
        return self._ref(column, ids[0], where) if ids else None

    def _ref(self, column: str, id_: Any, where: str) -> Any:
        target = self.targets[column]
        key = (target, id_)
        if key not in self._refs:
            if len(self._refs) > 100_000:
                self._refs.clear()

            found = self.db.execute(
                f'SELECT "REF" FROM {_quote(target)} WHERE "ID"=?', (id_,)
            ).fetchone()
            if found is None or found[0] in (None, ""):
                raise DataError(
                    f"{where}: {column} points at {target} ID {id_!r}, which the "
                    f"replica does not hold (or holds without a REF); export "
                    f"{target} into the same database first",
                    where=where,
                    value=id_,
                )
            self._refs[key] = found[0]
        return self._refs[key]


def _json_text(value: Any) -> Any:
    """Replica text that holds a JSON list or object, decoded; anything else as is."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _ids(value: Any) -> list[Any]:
    """Reference ids of a value: none for ``0``, ``""`` and ``None``."""
    members = value if isinstance(value, list) else [value]
    return [member for member in members if member not in (None, "", 0, "0")]


def _is_media(value: Any) -> bool:
    """True for exported media: a list of ``[status, file_id, url...]`` tuples."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(entry, list) and len(entry) >= 2 and isinstance(entry[0], str)
            for entry in value
        )
    )
