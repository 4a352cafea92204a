"""The SQLite sink, bulkflow's embedded default destination.

Each feed table becomes a SQL table of the same name: ``ID`` as primary key,
then one column per ``data_schema`` column, typed from ``data_schema_info``
(lists, media and embedded tables as JSON text). bulkflow's own bookkeeping
lives in names that start with ``_bulkflow``: the checkpoints table, and one
``_bulkflow_seen_<connector>`` column per connector on each data table, which
holds the id of the run in which that connector last delivered the row. A row
leaves the replica when no connector delivers it any more: a ``D`` row clears
its connector's mark, a finished refresh clears the marks of rows it did not
see, and rows left without any mark are deleted.

Every page and its checkpoint are committed in one transaction; in WAL mode
with ``synchronous=NORMAL`` a killed process loses at most the page it was
writing, never a committed one (a power cut may lose the last commits too,
which is then the same as a crash before them).

Over 400 lines: tables, upserts, marks and checkpoints belong to one
transaction and are kept together.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson

from bulkflow._exceptions import (
    DataError,
    RowDecodeError,
    SinkError,
    StateError,
    shorten,
)
from bulkflow._json import dumps_exact
from bulkflow.protocol import Column, Kind, TableSchema
from bulkflow.sinks._base import Checkpoint, PageStats

logger = logging.getLogger("bulkflow.sink")

PREFIX = "_bulkflow"
SEEN_PREFIX = f"{PREFIX}_seen_"
CHECKPOINTS = f"{PREFIX}_checkpoints"

#: SQLite page size of the files the sink creates (bytes).
PAGE_SIZE = 16384

_CHECKPOINTS_DDL = f"""
CREATE TABLE IF NOT EXISTS "{CHECKPOINTS}" (
    connector TEXT PRIMARY KEY,
    cursor INTEGER,
    run_time INTEGER,
    run_id INTEGER,
    action TEXT,
    next_url TEXT,
    pages_done INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    last_run TEXT,
    origin TEXT,
    updated_at REAL NOT NULL
)
"""

#: SQL column types by ``data_schema_info`` type; anything else is stored as is.
_SQL_TYPES = {
    "string": "TEXT",
    "big_string": "TEXT",
    "datetime": "TEXT",
    "numeric": "NUMERIC",
    "boolean": "INTEGER",
    "key": "NUMERIC",
}


def seen_column(connector: str) -> str:
    """The name of ``connector``'s mark column.

    SQLite compares column names without case, so the code alone would make
    ``CN_A`` and ``cn_a`` share a column; a short hash of the exact code
    keeps them apart.
    """
    digest = hashlib.sha256(connector.encode()).hexdigest()[:8]
    return f"{SEEN_PREFIX}{connector}_{digest}"


def quote(identifier: str) -> str:
    """Quote an SQL identifier that comes from the feed; never paste it raw."""
    return '"' + identifier.replace('"', '""') + '"'


def _is_json(column: Column) -> bool:
    return column.kind in (Kind.MEDIA, Kind.LIST, Kind.TABLE) or column.type in (
        "list",
        "json",
        "table",
    )


def _sql_type(column: Column) -> str:
    if _is_json(column):
        return "TEXT"
    return _SQL_TYPES.get(column.type, "")


class _Table:
    """The prepared statements and conversions for one feed table."""

    def __init__(self, schema: TableSchema, seen: str) -> None:
        self.schema = schema
        self.seen = seen
        names = ["ID", *(column.name for column in schema.columns), seen]
        quoted = [quote(name) for name in names]
        updates = ", ".join(f"{name}=excluded.{name}" for name in quoted[1:])
        self.upsert = (
            f"INSERT INTO {quote(schema.name)} ({', '.join(quoted)}) "
            f"VALUES ({', '.join('?' * len(quoted))}) "
            f'ON CONFLICT("ID") DO UPDATE SET {updates}'
        )
        # Positions (in ``row[1:]``, so ID is 0) whose values are stored as JSON.
        self.json_positions = [
            column.position - 1 for column in schema.columns if _is_json(column)
        ]
        self.width = schema.width


class SQLiteSink:
    """Write export runs into one SQLite database file.

    Args:
        path: the database file, created when missing (its folder must exist).
        read_only: open for reading checkpoints only; nothing is created.

    The object is used from one thread at a time (the export runs its calls
    in a worker thread, one after the other).
    """

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self._tables: dict[str, _Table] = {}
        self._stats = PageStats()
        self._run_id = 0
        self._seen = ""
        self._in_page = False
        if str(path) != ":memory:" and not self.path.parent.is_dir():
            # No silent mkdir -p: a typo in the path should not become a tree.
            raise SinkError(
                f"cannot open SQLite database {path}: the folder "
                f"{self.path.parent} does not exist"
            )
        try:
            if read_only:
                # For looking only (``bulkflow state``): nothing is created.
                self._db = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, check_same_thread=False
                )
                return
            self._db = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False
            )
            # Pages of 16 KiB hold a dozen rows of a feed instead of four:
            # fewer B-tree splits and WAL frames per row. It takes effect on
            # a new file only (before WAL mode and the first table).
            self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.execute(_CHECKPOINTS_DDL)
        except sqlite3.Error as exc:
            raise SinkError(f"cannot open SQLite database {path}: {exc}") from exc

    def __repr__(self) -> str:
        state = "in page" if self._in_page else "idle"
        return f"SQLiteSink(path={str(self.path)!r}, {state})"

    # -- checkpoints --------------------------------------------------------

    def load_checkpoint(self, connector: str) -> Checkpoint:
        """Return the stored checkpoint of ``connector`` (empty if none).

        Raises:
            StateError: the checkpoints table is not bulkflow's or is damaged.
        """
        rows = self._query_checkpoints(
            "SELECT connector, cursor, run_time, run_id, action, next_url, "
            f'pages_done, error, last_run, origin FROM "{CHECKPOINTS}" '
            "WHERE connector=?",
            (connector,),
        )
        if not rows:
            return Checkpoint(connector)
        return _checkpoint(rows[0])

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store ``checkpoint`` in the current transaction (or on its own)."""
        self._db.execute(
            f'INSERT OR REPLACE INTO "{CHECKPOINTS}" '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                checkpoint.connector,
                checkpoint.cursor,
                checkpoint.run_time,
                checkpoint.run_id,
                checkpoint.action,
                checkpoint.next_url,
                checkpoint.pages_done,
                checkpoint.error,
                None
                if checkpoint.last_run is None
                else orjson.dumps(checkpoint.last_run),
                checkpoint.origin,
                time.time(),
            ),
        )

    def checkpoints(self) -> list[Checkpoint]:
        """Every stored checkpoint, by connector."""
        rows = self._query_checkpoints(
            "SELECT connector, cursor, run_time, run_id, action, next_url, "
            f'pages_done, error, last_run, origin FROM "{CHECKPOINTS}" '
            "ORDER BY connector"
        )
        return [_checkpoint(row) for row in rows]

    def _query_checkpoints(
        self, sql: str, params: tuple[Any, ...] = ()
    ) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StateError(
                f"{self.path}: the table {CHECKPOINTS} is not bulkflow's or is "
                f"damaged ({exc}); export into another file"
            ) from exc

    def reset(self, connector: str) -> bool:
        """Forget ``connector``'s cursor and checkpoint: its next run is a refresh.

        The rows stay; the refresh then removes those it no longer delivers.
        Returns False when nothing was stored for it.
        """
        cursor = self._db.execute(
            f'DELETE FROM "{CHECKPOINTS}" WHERE connector=?', (connector,)
        )
        return cursor.rowcount > 0

    # -- pages ----------------------------------------------------------------

    def begin_page(
        self, connector: str, run_id: int, schemas: dict[str, TableSchema]
    ) -> None:
        """Start a page's transaction; create or widen tables for ``schemas``."""
        self._run_id = run_id
        self._seen = seen_column(connector)
        self._stats = PageStats()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._in_page = True
            for schema in schemas.values():
                self._prepare(schema)
        except sqlite3.Error as exc:
            self.rollback_page()
            raise SinkError(f"{self.path}: cannot prepare tables: {exc}") from exc

    def write(self, table: str, rows: list[list[Any]], *, first_index: int) -> None:
        """Apply wire rows of ``table``: ``D`` rows delete, the others upsert.

        Raises:
            RowDecodeError: a row that does not fit the table's schema; the
                page is not committed.
            SinkError: SQLite refused the write.
        """
        prepared = self._tables.get(table)
        if prepared is None:
            raise DataError(
                f"rows for table {table!r}, which data_schema does not describe",
                where=f"table {table!r}",
                offset=first_index,
            )
        upserts, deletes = self._split(prepared, rows, first_index)
        try:
            if upserts:
                self._upsert(prepared, upserts)
            if deletes:
                self._delete(table, deletes)
        except sqlite3.Error as exc:
            raise SinkError(f"{self.path}: writing {table!r} failed: {exc}") from exc
        except OverflowError as exc:
            raise SinkError(
                f"{self.path}: writing {table!r} failed: an integer does not fit "
                f"SQLite's 64 bits ({exc})"
            ) from exc
        stats = self._stats
        if upserts:
            stats.upserts[table] = stats.upserts.get(table, 0) + len(upserts)
        if deletes:
            stats.deletes[table] = stats.deletes.get(table, 0) + len(deletes)

    def _upsert(self, table: _Table, upserts: list[list[Any]]) -> None:
        try:
            self._db.executemany(table.upsert, upserts)
        except sqlite3.ProgrammingError:
            # A list or map where data_schema promised a scalar ("Error
            # binding parameter"): keep it as JSON text, as list columns
            # are kept, and upsert the chunk again (upserts are idempotent).
            columns = _lists_outside_json_columns(table, upserts)
            if not columns:
                raise
            logger.warning(
                "table %s: lists or maps in %s, which data_schema types as "
                "scalars; stored as JSON text",
                table.schema.name,
                ", ".join(columns),
            )
            self._db.executemany(table.upsert, upserts)

    def commit_page(
        self, checkpoint: Checkpoint, *, finish_refresh: bool = False
    ) -> PageStats:
        """Store ``checkpoint`` and commit the page; return what it changed."""
        try:
            if finish_refresh:
                self._finish_refresh()
            self.save_checkpoint(checkpoint)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self.rollback_page()
            raise SinkError(f"{self.path}: commit failed: {exc}") from exc
        self._in_page = False
        return self._stats

    def rollback_page(self) -> None:
        """Undo everything since :meth:`begin_page`."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self._in_page = False
        # The page may have created or widened tables: what _prepare knows
        # of them went with the rollback.
        self._tables.clear()

    def close(self) -> None:
        """Roll back an open page and close the database."""
        self.rollback_page()
        self._db.close()

    # -- internals --------------------------------------------------------------

    def _prepare(self, schema: TableSchema) -> None:
        """Create the table, or add the columns a new schema brings."""
        known = self._tables.get(schema.name)
        if known is not None and known.schema == schema and known.seen == self._seen:
            return
        _refuse_reserved(schema)
        name = quote(schema.name)
        existing = {row[1] for row in self._db.execute(f"PRAGMA table_info({name})")}
        if not existing:
            columns = ", ".join(
                f"{quote(column.name)} {_sql_type(column)}".rstrip()
                for column in schema.columns
            )
            self._db.execute(
                f'CREATE TABLE {name} ("ID" NOT NULL PRIMARY KEY'
                f"{', ' + columns if columns else ''})"
            )
            existing = {"ID", *(column.name for column in schema.columns)}
        wanted = [(column.name, _sql_type(column)) for column in schema.columns]
        wanted.append((self._seen, "INTEGER"))
        for column_name, sql_type in wanted:
            if column_name not in existing:
                self._db.execute(
                    f"ALTER TABLE {name} ADD COLUMN {quote(column_name)} {sql_type}"
                )
        self._tables[schema.name] = _Table(schema, self._seen)

    def _split(
        self, table: _Table, rows: list[list[Any]], first_index: int
    ) -> tuple[list[list[Any]], list[Any]]:
        """Turn wire rows into upsert parameters and ids to delete."""
        upserts: list[list[Any]] = []
        deletes: list[Any] = []
        json_positions = table.json_positions
        width = table.width
        run_id = self._run_id
        dumps = orjson.dumps
        for offset, row in enumerate(rows):
            if len(row) != width:
                if len(row) >= 2 and row[0] == "D":
                    deletes.append(row[1])
                    continue
                raise self._bad_row(table, row, first_index + offset)
            if row[0] == "D":
                deletes.append(row[1])
                continue
            if type(row[1]) not in (int, str) or row[1] == "":
                raise self._bad_row(table, row, first_index + offset, "ID")
            values = row[1:]
            for position in json_positions:
                value = values[position]
                if type(value) is list or type(value) is dict:
                    try:
                        values[position] = dumps(value).decode()
                    except TypeError:  # too wide an integer, too deep a list
                        values[position] = self._json_text(
                            table, row, first_index + offset, value
                        )
            values.append(run_id)
            upserts.append(values)
        return upserts, deletes

    def _json_text(self, table: _Table, row: Any, index: int, value: Any) -> str:
        """JSON text where orjson stops; a RowDecodeError where nothing can."""
        try:
            return dumps_exact(value).decode()
        except ValueError as exc:
            where = f"table {table.schema.name!r}, row {index}"
            raise RowDecodeError(
                f"{where}: {exc}: {shorten(row)}", where=where, offset=index, value=row
            ) from None

    def _bad_row(
        self, table: _Table, row: Any, index: int, what: str = "width"
    ) -> RowDecodeError:
        where = f"table {table.schema.name!r}, row {index}"
        if what == "ID":
            problem = "its ID must be a number or a non-empty string"
        else:
            problem = f"it has {len(row)} values, data_schema has {table.width}"
        return RowDecodeError(
            f"{where}: {problem}: {shorten(row)}", where=where, offset=index, value=row
        )

    def _delete(self, table: str, ids: list[Any]) -> None:
        """A ``D`` row: the row goes if this connector alone delivered it.

        Otherwise only this connector's mark goes. A row this connector
        never delivered (another connector's, or not bulkflow's at all)
        stays as it is.
        """
        name, seen = quote(table), quote(self._seen)
        params = [(id_,) for id_ in ids]
        others = self._no_other_marks(table)
        self._db.executemany(
            f'DELETE FROM {name} WHERE "ID"=? AND {seen} IS NOT NULL AND {others}',
            params,
        )
        self._db.executemany(f'UPDATE {name} SET {seen}=NULL WHERE "ID"=?', params)

    def _no_other_marks(self, table: str) -> str:
        """An SQL condition: no connector but this one has marked the row."""
        columns = [
            row[1]
            for row in self._db.execute(f"PRAGMA table_info({quote(table)})")
            if str(row[1]).startswith(SEEN_PREFIX) and row[1] != self._seen
        ]
        return " AND ".join(f"{quote(column)} IS NULL" for column in columns) or "1"

    def _finish_refresh(self) -> None:
        """Remove what this connector delivered before and its refresh did not.

        Rows that other connectors still deliver only lose this connector's
        mark; rows bulkflow never delivered are not touched.
        """
        seen = quote(self._seen)
        stale = f"{seen} IS NOT NULL AND {seen}<>?"
        for table in self._tables:
            name = quote(table)
            others = self._no_other_marks(table)
            removed = self._db.execute(
                f"DELETE FROM {name} WHERE {stale} AND {others}", (self._run_id,)
            ).rowcount
            self._db.execute(
                f"UPDATE {name} SET {seen}=NULL WHERE {stale}", (self._run_id,)
            )
            if removed > 0:
                deletes = self._stats.deletes
                deletes[table] = deletes.get(table, 0) + removed


def _lists_outside_json_columns(table: _Table, upserts: list[list[Any]]) -> list[str]:
    """Turn lists and maps of scalar columns into JSON text; name those columns."""
    names = ["ID", *(column.name for column in table.schema.columns)]
    found: dict[str, None] = {}
    for values in upserts:
        for position, value in enumerate(values):
            if type(value) is list or type(value) is dict:
                column = names[position] if position < len(names) else "?"
                try:
                    values[position] = dumps_exact(value).decode()
                except ValueError as exc:
                    where = f"table {table.schema.name!r}, column {column!r}"
                    raise DataError(f"{where}: {exc}", where=where) from None
                found[column] = None
    return list(found)


def _checkpoint(row: tuple[Any, ...]) -> Checkpoint:
    connector, cursor, run_time, run_id, action, next_url, pages, error = row[:8]
    last, origin = row[8:]
    try:
        last_run = orjson.loads(last) if last else None
    except orjson.JSONDecodeError as exc:
        raise StateError(
            f"the stored last run of connector {connector!r} is not JSON; "
            f"`bulkflow state --reset {connector}` starts it over"
        ) from exc
    return Checkpoint(
        connector,
        cursor=cursor,
        run_time=run_time,
        run_id=run_id,
        action=action,
        next_url=next_url,
        pages_done=pages,
        error=error,
        last_run=last_run,
        origin=origin,
    )


def _refuse_reserved(schema: TableSchema) -> None:
    names = [schema.name, *(column.name for column in schema.columns)]
    for name in names:
        if name.lower().startswith(PREFIX) or name.lower().startswith("sqlite_"):
            raise DataError(
                f"the feed names a table or column {name!r}; names starting with "
                f"{PREFIX!r} or 'sqlite_' are reserved for bulkflow and SQLite",
                where=f"data_schema of {schema.name!r}",
                value=name,
            )
