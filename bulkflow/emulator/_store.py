"""The emulator's catalog: items with their change times, kept in SQLite.

One SQLite database holds everything the emulator knows: the schema of each
table, every item as its wire values, when each item last changed, the
tombstones of deleted items, and the connectors. SQLite makes ``--state DIR``
survive restarts and lets another process (``bulkflow churn``) change the
catalog of a running server: both open the same file in WAL mode.

Rows are kept as the JSON of their values after ``ID``, so a page is served by
pasting stored bytes together, without decoding a single row.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bulkflow._exceptions import UsageError
from bulkflow.emulator._source import CatalogSource
from bulkflow.protocol import reference_ids

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    tbl TEXT NOT NULL,
    id INTEGER NOT NULL,
    changed_at INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    hidden INTEGER NOT NULL DEFAULT 0,
    parents BLOB,
    row BLOB,
    PRIMARY KEY (tbl, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS connectors (
    code TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    kind TEXT NOT NULL,
    options BLOB NOT NULL,
    config_changed_at INTEGER NOT NULL
);
"""

DB_NAME = "catalog.sqlite"


@dataclass(frozen=True)
class Connector:
    """A connector of the emulator: its code, secret, kind and options."""

    code: str
    secret: str
    kind: str
    options: dict[str, Any]
    config_changed_at: int

    def __repr__(self) -> str:
        # The secret stays out of reprs, and so out of logs and tracebacks.
        return f"Connector(code={self.code!r}, kind={self.kind!r})"


@dataclass(frozen=True)
class StoredRow:
    """One item as the store returns it for a page."""

    id: int
    deleted: bool
    row: bytes | None
    hidden: bool = False
    changed_at: int = 0


class CatalogStore:
    """The catalog and connectors of one emulator, in one SQLite database.

    Open with :meth:`open`; ``path=None`` keeps everything in memory.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._parent_columns: dict[str, int] | None = None

    @classmethod
    def open(cls, directory: Path | None = None) -> CatalogStore:
        """Open (creating when needed) the store in ``directory``, or in memory."""
        try:
            if directory is None:
                target = ":memory:"
            else:
                directory.mkdir(parents=True, exist_ok=True)
                target = str(directory / DB_NAME)
            db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=10000")
            db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise UsageError(
                f"--state {directory}: cannot open the emulator's catalog there: {exc}"
            ) from exc
        return cls(db)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # -- meta -------------------------------------------------------------

    def get_meta(self, key: str) -> Any:
        """Return the decoded meta value ``key``, or ``None``."""
        found = self._db.execute("SELECT value FROM meta WHERE key=?", (key,))
        row = found.fetchone()
        return None if row is None else orjson.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-able) under ``key``."""
        self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            (key, orjson.dumps(value)),
        )

    @property
    def loaded(self) -> bool:
        """True once a catalog has been loaded."""
        return self.get_meta("catalog") is not None

    # -- loading ----------------------------------------------------------

    def load(self, source: CatalogSource) -> int:
        """Replace the catalog by ``source``; return the number of items."""
        count = 0
        with self.transaction():
            self._db.execute("DELETE FROM items")
            self.set_meta("catalog", source.name)
            self.set_meta("tables", list(source.tables))
            self.set_meta("schema", source.schema)
            self.set_meta("data_schema", source.data_schema)
            self.set_meta("data_schema_info", source.data_schema_info)
            self.set_meta("parent_columns", _parent_columns(source.data_schema))
            self._parent_columns = None
            for batch in _batches(source.rows(), 10_000):
                self._db.executemany(
                    "INSERT INTO items (tbl, id, changed_at, parents, row) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [
                        (
                            table,
                            id_,
                            source.loaded_at,
                            self._parents(table, values),
                            orjson.dumps(values),
                        )
                        for table, id_, values in batch
                    ],
                )
                count += len(batch)
        return count

    def _parents(self, table: str, values: list[Any]) -> bytes | None:
        """The ids the item's first ``ID_*`` column points at, as JSON."""
        if self._parent_columns is None:
            self._parent_columns = self.get_meta("parent_columns") or {}
        position = self._parent_columns.get(table)
        if position is None:
            return None
        return orjson.dumps(reference_ids(values[position]))

    def transaction(self) -> _Transaction:
        """A context manager running its block in one IMMEDIATE transaction."""
        return _Transaction(self._db)

    # -- connectors -------------------------------------------------------

    def put_connector(
        self, code: str, secret: str, *, kind: str, options: dict[str, Any]
    ) -> Connector:
        """Create or reconfigure a connector.

        A change of options counts as a configuration change, which turns the
        next ``update`` into a ``refresh`` unless the request sends
        ``force_update_only=1`` (``saleslayer-1.18.md`` §3.3).
        """
        old = self.connector(code)
        # A new connector has no configuration history: its first run is a
        # refresh anyway, for want of a cursor.
        changed_at = 0 if old is None else int(time.time())
        if old is not None and old.options == options and old.kind == kind:
            changed_at = old.config_changed_at
        self._db.execute(
            "INSERT OR REPLACE INTO connectors VALUES (?, ?, ?, ?, ?)",
            (code, secret, kind, orjson.dumps(options), changed_at),
        )
        return Connector(code, secret, kind, options, changed_at)

    def connector(self, code: str) -> Connector | None:
        """Return the connector called ``code``, or ``None``."""
        row = self._db.execute(
            "SELECT code, secret, kind, options, config_changed_at "
            "FROM connectors WHERE code=?",
            (code,),
        ).fetchone()
        if row is None:
            return None
        return Connector(row[0], row[1], row[2], orjson.loads(row[3]), row[4])

    # -- serving ----------------------------------------------------------

    # -- changes ----------------------------------------------------------

    def upsert(self, table: str, id_: int, values: list[Any], *, at: int) -> None:
        """Create or replace an item, changed at ``at`` (a hidden item stays hidden)."""
        self._db.execute(
            "INSERT INTO items (tbl, id, changed_at, deleted, parents, row) "
            "VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT (tbl, id) DO UPDATE SET "
            "changed_at=excluded.changed_at, deleted=0, parents=excluded.parents, "
            "row=excluded.row",
            (table, id_, at, self._parents(table, values), orjson.dumps(values)),
        )

    def set_hidden(self, table: str, id_: int, hidden: bool, *, at: int) -> None:
        """Hide an item from every connector (or show it again), changed at ``at``."""
        self._db.execute(
            "UPDATE items SET hidden=?, changed_at=? WHERE tbl=? AND id=?",
            (int(hidden), at, table, id_),
        )

    def touch(self, table: str, ids: Iterable[int], *, at: int) -> None:
        """Mark items as changed at ``at`` without changing them (a cascade)."""
        self._db.executemany(
            "UPDATE items SET changed_at=? WHERE tbl=? AND id=? AND changed_at<?",
            [(at, table, id_, at) for id_ in ids],
        )

    def tree(self, table: str) -> dict[int, tuple[list[int], bool, bool]]:
        """Every item of ``table`` as ``id: (parents, hidden, deleted)``."""
        cursor = self._db.execute(
            "SELECT id, parents, hidden, deleted FROM items WHERE tbl=?", (table,)
        )
        return {
            id_: (orjson.loads(parents) if parents else [], bool(hidden), bool(gone))
            for id_, parents, hidden, gone in cursor
        }

    def changed_since(self, table: str, since: int) -> list[int]:
        """Ids of ``table`` changed at or after ``since``, deletions included."""
        cursor = self._db.execute(
            "SELECT id FROM items WHERE tbl=? AND changed_at>=?", (table, since)
        )
        return [row[0] for row in cursor]

    def iter_rows(self, table: str, after_id: int) -> Iterator[StoredRow]:
        """Every item of ``table`` with an id above ``after_id``, by id."""
        cursor = self._db.execute(
            "SELECT id, deleted, hidden, changed_at, row FROM items "
            "WHERE tbl=? AND id>? ORDER BY id",
            (table, after_id),
        )
        for id_, deleted, hidden, changed_at, row in cursor:
            yield StoredRow(id_, bool(deleted), row, bool(hidden), changed_at)

    def version(self) -> tuple[int, int]:
        """Changes whenever this or another connection commits to the store."""
        data_version = self._db.execute("PRAGMA data_version").fetchone()[0]
        return int(data_version), self._db.total_changes

    def delete(self, table: str, id_: int, *, at: int) -> bool:
        """Turn a live item into a tombstone; False when there was none."""
        cursor = self._db.execute(
            "UPDATE items SET deleted=1, row=NULL, changed_at=? "
            "WHERE tbl=? AND id=? AND deleted=0",
            (at, table, id_),
        )
        return cursor.rowcount > 0

    def iter_items(
        self, table: str, *, after_id: int = 0, limit: int = -1
    ) -> Iterator[tuple[int, list[Any]]]:
        """Yield ``(id, values)`` of live items of ``table`` after ``after_id``."""
        cursor = self._db.execute(
            "SELECT id, row FROM items WHERE tbl=? AND deleted=0 AND id>? "
            "ORDER BY id LIMIT ?",
            (table, after_id, limit),
        )
        for id_, row in cursor:
            yield id_, orjson.loads(row)

    def max_id(self, table: str) -> int:
        """The highest id ever used in ``table`` (tombstones included)."""
        row = self._db.execute(
            "SELECT max(id) FROM items WHERE tbl=?", (table,)
        ).fetchone()
        return int(row[0] or 0)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _parent_columns(data_schema: dict[str, list[Any]]) -> dict[str, int]:
    """Per table, the value position of its first ``ID_*`` column (its parents)."""
    found: dict[str, int] = {}
    for table, entries in data_schema.items():
        for position, entry in enumerate(entries[2:]):
            if isinstance(entry, str) and entry.startswith("ID_"):
                found[table] = position
                break
    return found


def _batches(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
