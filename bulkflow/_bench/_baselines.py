"""The baseline clients the harness runs in child processes, and their wire helpers.

A baseline takes the options of ``bulkflow export`` (``--url --code
--secret-env --into sqlite:///PATH --page-size N --report FILE``) and writes
a JSON report with ``rows``, ``seconds`` and ``rows_per_s``, timed from
before the first request to after the last commit (interpreter start-up and
imports are not counted, as in bulkflow's own report). It runs alone in its
own process, so the harness can read that process's peak memory at its end.

``naive`` is what one writes without a streaming design: fetch a whole
page, ``orjson.loads`` it, ``executemany`` its rows into SQLite, commit,
follow ``next_page``, one page after another. It uses the same SQLite
settings as bulkflow's sink (WAL, ``synchronous=NORMAL``, a commit per
page), so the two differ in how they move rows, not in durability.

Run as ``python -m bulkflow._bench._baselines naive OPTIONS``. The module
imports no more than a baseline needs (aiohttp, orjson, the signing code),
because its imports count in the baseline's peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from bulkflow.protocol import API_VERSION, encode_form, signed_params

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The most pages a baseline follows before it gives up on a looping feed.
MAX_PAGES = 1_000_000

_SQLITE_PREFIX = "sqlite:///"

#: Where ``find_next_page`` looks: the header before ``data`` fits in far less.
HEAD_BYTES = 1024 * 1024

_NEXT_PAGE_KEY = b'"next_page":"'


def find_next_page(head: bytes) -> str | None:
    """Return the ``next_page`` URL of a page from the bytes before its ``data``.

    The bench server renders pages with ``next_page`` ahead of ``data``
    (the emulator's default), so the header alone tells where to go next.
    Inside a JSON string every quote is escaped, so the key pattern can only
    match the member itself.
    """
    data_at = head.find(b'"data":')
    start = head.find(_NEXT_PAGE_KEY, 0, data_at if data_at >= 0 else len(head))
    if start < 0:
        return None
    start += len(_NEXT_PAGE_KEY) - 1
    end = head.find(b'"', start + 1)
    while end > 0 and head[end - 1 : end] == b"\\":
        end = head.find(b'"', end + 1)
    if end < 0:
        return None
    return str(orjson.loads(head[start : end + 1])) or None


def first_request(
    code: str, secret: str, page_size: int
) -> tuple[dict[str, str], str, dict[str, str]]:
    """The query, form body and headers of a run's first, signed, request."""
    query = {
        **signed_params(code, secret, time=int(time.time())),
        "ver": API_VERSION,
        "group_category_id": "1",
    }
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return query, encode_form({"pagination": page_size}), headers


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class NaiveWriter:
    """Write whole parsed pages into SQLite, one transaction per page."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._inserts: dict[str, str] = {}
        self.rows = 0

    def write_page(self, page: dict[str, Any]) -> None:
        """Upsert or delete every row of every table of ``page``."""
        data = page.get("data") or {}
        self._db.execute("BEGIN")
        for table, rows in data.items():
            insert = self._table(table, page["data_schema"][table])
            upserts = [_values(row) for row in rows if row[0] != "D"]
            deletes = [(row[1],) for row in rows if row[0] == "D"]
            self._db.executemany(insert, upserts)
            delete = f'DELETE FROM {_quote(table)} WHERE "ID"=?'
            self._db.executemany(delete, deletes)
            self.rows += len(rows)
        self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def _table(self, table: str, layout: list[Any]) -> str:
        """Create ``table`` on first sight; return its upsert statement."""
        if table in self._inserts:
            return self._inserts[table]
        names = [e if isinstance(e, str) else next(iter(e)) for e in layout][1:]
        columns = ", ".join(_quote(name) for name in names[1:])
        self._db.execute(
            f'CREATE TABLE IF NOT EXISTS {_quote(table)} ("ID" PRIMARY KEY, {columns})'
        )
        marks = ", ".join("?" * len(names))
        insert = f"INSERT OR REPLACE INTO {_quote(table)} VALUES ({marks})"
        self._inserts[table] = insert
        return insert


def _values(row: list[Any]) -> list[Any]:
    """A wire row's values after ``STATUS``; lists and maps as JSON text."""
    return [
        orjson.dumps(value).decode() if isinstance(value, list | dict) else value
        for value in row[1:]
    ]


async def naive_export(
    url: str, code: str, secret: str, path: str, *, page_size: int
) -> dict[str, Any]:
    """Run the naive client once; return its report."""
    writer = NaiveWriter(path)
    started = time.perf_counter()
    try:
        async with aiohttp.ClientSession() as session:
            pages = await _naive_pages(session, writer, url, code, secret, page_size)
    finally:
        writer.close()
    return _report(writer.rows, pages, time.perf_counter() - started)


async def _naive_pages(
    session: aiohttp.ClientSession,
    writer: NaiveWriter,
    url: str,
    code: str,
    secret: str,
    page_size: int,
) -> int:
    """Fetch, parse and write page after page; return how many."""
    query, body, headers = first_request(code, secret, page_size)
    request = session.post(url, params=query, data=body, headers=headers)
    for number in range(1, MAX_PAGES + 1):
        async with request as response:
            page = orjson.loads(await response.read())
        writer.write_page(page)
        next_url = page.get("next_page")
        if not next_url:
            return number
        request = session.get(next_url)
    raise RuntimeError(f"the feed passed {MAX_PAGES} pages; stopping a page loop")


def _report(rows: int, pages: int, seconds: float) -> dict[str, Any]:
    return {
        "rows": rows,
        "pages": pages,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds, 1) if seconds > 0 else 0.0,
    }


def _path_of(into: str) -> str:
    if not into.startswith(_SQLITE_PREFIX) or len(into) == len(_SQLITE_PREFIX):
        raise SystemExit(f"--into {into!r}: the baselines write sqlite:///PATH only")
    return into[len(_SQLITE_PREFIX) :]


def parser() -> argparse.ArgumentParser:
    """The options, the same as ``bulkflow export``'s that the harness uses."""
    main_parser = argparse.ArgumentParser(prog="python -m bulkflow._bench._baselines")
    clients = main_parser.add_subparsers(dest="client", required=True)
    for name in ("naive",):
        client = clients.add_parser(name)
        client.add_argument("--url", required=True)
        client.add_argument("--code", required=True)
        client.add_argument("--secret-env", required=True)
        client.add_argument("--into", required=True)
        client.add_argument("--page-size", type=int, required=True)
        client.add_argument("--report", required=True)
    return main_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of a client process."""
    args = parser().parse_args(argv)
    secret = os.environ[args.secret_env]
    path = _path_of(args.into)
    run = naive_export(args.url, args.code, secret, path, page_size=args.page_size)
    report = asyncio.run(run)
    Path(args.report).write_bytes(orjson.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
