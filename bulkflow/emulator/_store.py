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

from bulkflow.emulator._source import CatalogSource

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    tbl TEXT NOT NULL,
    id INTEGER NOT NULL,
    changed_at INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
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


class CatalogStore:
    """The catalog and connectors of one emulator, in one SQLite database.

    Open with :meth:`open`; ``path=None`` keeps everything in memory.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    @classmethod
    def open(cls, directory: Path | None = None) -> CatalogStore:
        """Open (creating when needed) the store in ``directory``, or in memory."""
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
            for batch in _batches(source.rows(), 10_000):
                self._db.executemany(
                    "INSERT INTO items (tbl, id, changed_at, row) VALUES (?, ?, ?, ?)",
                    [
                        (table, id_, source.loaded_at, orjson.dumps(values))
                        for table, id_, values in batch
                    ],
                )
                count += len(batch)
        return count

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

    def count(self, *, since: int | None) -> int:
        """Count the rows a run serves: live items, or every change since ``since``."""
        if since is None:
            query = "SELECT count(*) FROM items WHERE deleted=0"
            return int(self._db.execute(query).fetchone()[0])
        query = "SELECT count(*) FROM items WHERE changed_at>=?"
        return int(self._db.execute(query, (since,)).fetchone()[0])

    def rows_after(
        self, table: str, after_id: int, *, since: int | None, limit: int
    ) -> list[StoredRow]:
        """Return up to ``limit`` rows of ``table`` with an id above ``after_id``.

        ``since=None`` serves a refresh (live items only); otherwise every
        item changed at or after ``since``, deletions included. Pages walk the
        ids in order (keyset pagination), so items added or removed during a
        run do not shift the pages still to come.
        """
        if since is None:
            cursor = self._db.execute(
                "SELECT id, deleted, row FROM items WHERE tbl=? AND id>? "
                "AND deleted=0 ORDER BY id LIMIT ?",
                (table, after_id, limit),
            )
        else:
            cursor = self._db.execute(
                "SELECT id, deleted, row FROM items WHERE tbl=? AND id>? "
                "AND changed_at>=? ORDER BY id LIMIT ?",
                (table, after_id, since, limit),
            )
        return [StoredRow(id_, bool(deleted), row) for id_, deleted, row in cursor]

    # -- changes ----------------------------------------------------------

    def upsert(self, table: str, id_: int, values: list[Any], *, at: int) -> None:
        """Create or replace an item, changed at ``at``."""
        self._db.execute(
            "INSERT OR REPLACE INTO items (tbl, id, changed_at, deleted, row) "
            "VALUES (?, ?, ?, 0, ?)",
            (table, id_, at, orjson.dumps(values)),
        )

    def delete(self, table: str, id_: int, *, at: int) -> bool:
        """Turn a live item into a tombstone; False when there was none."""
        cursor = self._db.execute(
            "UPDATE items SET deleted=1, row=NULL, changed_at=? "
            "WHERE tbl=? AND id=? AND deleted=0",
            (at, table, id_),
        )
        return cursor.rowcount > 0

    def iter_items(self, table: str) -> Iterator[tuple[int, list[Any]]]:
        """Yield ``(id, values)`` of every live item of ``table``, by id."""
        cursor = self._db.execute(
            "SELECT id, row FROM items WHERE tbl=? AND deleted=0 ORDER BY id",
            (table,),
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


def _batches(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
