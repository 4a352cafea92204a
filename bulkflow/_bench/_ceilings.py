"""The ceiling ladder: how fast each stage of an export can go on its own.

Each rung measures one stage with nothing else in the way, over the very
pages the replay server serves:

1. body read: an aiohttp client reads every page and drops the bytes
   (MB/s and rows/s); what the loopback network and aiohttp allow.
2. ijson parse: ijson's C backend builds every row from page bytes already
   in memory, no sink. Three ways are timed and the fastest one counts:
   ``ijson.items`` once per table the page holds (each call lexes the whole
   page), ``ijson.kvitems(page, "data")`` (one pass, whole tables), and
   bulkflow's streaming reader (``PageParser``: one ``ijson.items`` over the
   whole page, rows taken out as they are finished), fed 256 KiB at a time.
3. orjson parse: the whole page with ``orjson.loads``.
4. sink write: :class:`~bulkflow.sinks.SQLiteSink` fed rows already parsed,
   in chunks of ``--chunk-rows`` (bulkflow's default), one transaction and
   checkpoint per page, the refresh finished on the last page, as an export
   does.

A stage's rate is its rows (or bytes) over the seconds spent in that stage
alone. The garbage collector stays on, as it is for bulkflow, but does not
walk the harness's own copy of a page (see ``_climb``). Run as
``python -m bulkflow._bench._ceilings OPTIONS``; the report is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from bulkflow._bench._baselines import (
    HEAD_BYTES,
    MAX_PAGES,
    find_next_page,
    first_request,
)
from bulkflow.export._parser import PageParser, RowChunk
from bulkflow.protocol import schemas
from bulkflow.sinks import Checkpoint, SQLiteSink

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from types import ModuleType

#: Bytes asked of the socket per read, as bulkflow's HTTP layer asks.
READ_SIZE = 256 * 1024


def ijson_backend() -> ModuleType:
    """ijson's C backend, or its default backend where C is not built."""
    import ijson

    backend: ModuleType
    try:
        backend = ijson.get_backend("yajl2_c")
    except ImportError:
        backend = ijson
    return backend


@dataclass
class Ladder:
    """Seconds spent in each stage, and what went through it."""

    pages: int = 0
    rows: int = 0
    bytes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        """Count ``seconds`` more spent in ``stage``."""
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def rate(self, stage: str, amount: int) -> float:
        """``amount`` per second of ``stage``."""
        seconds = self.seconds.get(stage, 0.0)
        return round(amount / seconds, 1) if seconds > 0 else 0.0


async def read_bodies(
    session: aiohttp.ClientSession, url: str, code: str, secret: str, page_size: int
) -> tuple[int, int]:
    """Read every page of a run and drop the bytes; return (pages, bytes)."""
    query, body, headers = first_request(code, secret, page_size)
    request = session.post(url, params=query, data=body, headers=headers)
    total = 0
    for number in range(1, MAX_PAGES + 1):
        async with request as response:
            head, size = await _drop_body(response.content)
        total += size
        next_url = find_next_page(head)
        if next_url is None:
            return number, total
        request = session.get(next_url)
    raise RuntimeError(f"the feed passed {MAX_PAGES} pages; stopping a page loop")


async def _drop_body(content: aiohttp.StreamReader) -> tuple[bytes, int]:
    """Read a body to its end; keep only its header, up to ``data``."""
    head, size, keep = b"", 0, True
    while data := await content.read(READ_SIZE):
        size += len(data)
        if keep:
            head += data
            keep = b'"data":' not in head and len(head) < HEAD_BYTES
    return head, size


async def aiter_pages(
    session: aiohttp.ClientSession, url: str, code: str, secret: str, page_size: int
) -> AsyncIterator[tuple[bytes, str | None]]:
    """Yield each page's bytes, whole, with its ``next_page`` URL."""
    query, body, headers = first_request(code, secret, page_size)
    request = session.post(url, params=query, data=body, headers=headers)
    for _ in range(MAX_PAGES):
        async with request as response:
            page = await response.read()
        next_url = find_next_page(page[:HEAD_BYTES])
        yield page, next_url
        if next_url is None:
            return
        request = session.get(next_url)


def parse_with_items(ijson: ModuleType, page: bytes, tables: Sequence[str]) -> int:
    """Build every row with ``ijson.items``, one pass per table; count them."""
    count = 0
    for table in tables:
        for _row in ijson.items(page, f"data.{table}.item", use_float=True):
            count += 1
    return count


def parse_with_reader(page: bytes) -> int:
    """Build every row with bulkflow's streaming reader; count them."""
    parser = PageParser(max_chunk_rows=1000)
    events = []
    for start in range(0, len(page), READ_SIZE):
        events += parser.feed(page[start : start + READ_SIZE])
    events += parser.close()
    return sum(len(event.rows) for event in events if isinstance(event, RowChunk))


def parse_with_kvitems(ijson: ModuleType, page: bytes) -> dict[str, int]:
    """Build every table with ``ijson.kvitems`` in one pass; count rows per table."""
    return {
        str(table): len(rows)
        for table, rows in ijson.kvitems(page, "data", use_float=True)
    }


class SinkFeeder:
    """Feed parsed pages to a :class:`SQLiteSink` the way an export run does."""

    def __init__(self, path: str, code: str, *, chunk_rows: int) -> None:
        self.sink = SQLiteSink(path)
        self.code = code
        self.chunk_rows = chunk_rows
        self.pages = 0
        self.rows = 0
        # A run's id marks the rows it delivers, as ExportRun's does.
        self.run_id = time.time_ns()

    def write_page(self, page: dict[str, Any], next_url: str | None) -> None:
        """Begin, write in chunks, and commit one page with its checkpoint."""
        run_time = int(page["time"])
        tables = schemas(page["data_schema"], page.get("data_schema_info"))
        self.sink.begin_page(self.code, self.run_id, tables)
        step = self.chunk_rows
        for table, rows in (page.get("data") or {}).items():
            for first in range(0, len(rows), step):
                self.sink.write(table, rows[first : first + step], first_index=first)
            self.rows += len(rows)

        self.pages += 1
        action = str(page.get("action") or "update")
        finish = next_url is None and action == "refresh"
        self.sink.commit_page(
            self._checkpoint(run_time, action, next_url), finish_refresh=finish
        )

    def _checkpoint(
        self, run_time: int, action: str, next_url: str | None
    ) -> Checkpoint:
        """The checkpoint an export stores with this page."""
        if next_url is None:
            summary = {"action": action, "pages": self.pages, "rows": self.rows}
            return Checkpoint(self.code, cursor=run_time, last_run=summary)
        return Checkpoint(
            self.code,
            run_time=run_time,
            run_id=self.run_id,
            action=action,
            next_url=next_url,
            pages_done=self.pages,
        )


async def measure(args: argparse.Namespace, secret: str) -> dict[str, Any]:
    """Climb the ladder once; return the rates."""
    ladder = Ladder()
    ijson = ijson_backend()
    feeder = SinkFeeder(args.db, args.code, chunk_rows=args.chunk_rows)
    try:
        async with aiohttp.ClientSession() as session:
            started = time.perf_counter()
            ladder.pages, ladder.bytes = await read_bodies(
                session, args.url, args.code, secret, args.page_size
            )
            ladder.add("body", time.perf_counter() - started)

            # The other rungs time pages held in memory, one page at a time.
            pages = aiter_pages(session, args.url, args.code, secret, args.page_size)
            async for page, next_url in pages:
                _climb(ladder, ijson, feeder, page, next_url)
    finally:
        feeder.sink.close()
    return _rates(ladder, getattr(ijson, "backend", "python"))


def _climb(
    ladder: Ladder,
    ijson: ModuleType,
    feeder: SinkFeeder,
    page: bytes,
    next_url: str | None,
) -> None:
    """Time the parse and sink stages on one page held in memory.

    The ijson rungs go first, while no parsed page is alive: the garbage
    collector would otherwise walk its millions of objects again and again,
    a cost of the harness, not of parsing.
    """
    clock = time.perf_counter
    started = clock()
    counts = parse_with_kvitems(ijson, page)
    ladder.add("ijson_kvitems", clock() - started)
    ladder.rows += sum(counts.values())
    started = clock()
    parse_with_items(ijson, page, [table for table, n in counts.items() if n])
    ladder.add("ijson_items", clock() - started)
    started = clock()
    parse_with_reader(page)
    ladder.add("ijson_reader", clock() - started)

    started = clock()
    parsed = orjson.loads(page)
    ladder.add("orjson", clock() - started)

    # The same holds for the sink's input: frozen objects are not collected.
    gc.freeze()
    try:
        started = clock()
        feeder.write_page(parsed, next_url)
        ladder.add("sink", clock() - started)
    finally:
        gc.unfreeze()


def _rates(ladder: Ladder, backend: str) -> dict[str, Any]:
    rows = ladder.rows
    items = ladder.rate("ijson_items", rows)
    kvitems = ladder.rate("ijson_kvitems", rows)
    reader = ladder.rate("ijson_reader", rows)
    methods = {
        "ijson.items": items,
        "ijson.kvitems": kvitems,
        "bulkflow reader": reader,
    }
    fastest = max(methods, key=lambda name: methods[name])
    return {
        "pages": ladder.pages,
        "rows": rows,
        "bytes": ladder.bytes,
        "body_mb_per_s": round(ladder.rate("body", ladder.bytes) / 1e6, 1),
        "body_rows_per_s": ladder.rate("body", rows),
        "ijson_backend": backend,
        "ijson_items_rows_per_s": items,
        "ijson_kvitems_rows_per_s": kvitems,
        "ijson_reader_rows_per_s": reader,
        "parse_rows_per_s": methods[fastest],
        "parse_method": fastest,
        "orjson_rows_per_s": ladder.rate("orjson", rows),
        "sink_rows_per_s": ladder.rate("sink", rows),
        "seconds": {stage: round(s, 3) for stage, s in ladder.seconds.items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ceilings process."""
    parser = argparse.ArgumentParser(prog="python -m bulkflow._bench._ceilings")
    parser.add_argument("--url", required=True)
    parser.add_argument("--code", required=True)
    parser.add_argument("--secret-env", required=True)
    parser.add_argument("--page-size", type=int, required=True)
    parser.add_argument("--db", required=True, help="SQLite file of the sink rung")
    parser.add_argument("--chunk-rows", type=int, default=1000)
    parser.add_argument("--report", required=True)
    args = parser.parse_args(argv)
    rates = asyncio.run(measure(args, os.environ[args.secret_env]))
    Path(args.report).write_bytes(orjson.dumps(rates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
