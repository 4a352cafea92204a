"""How fast each way of reading a page turns bytes into rows, in one process.

Renders the pages of a synthetic catalog once (the emulator, in process),
then times, over the very same bytes, per row:

* ``stream``: bulkflow's streaming reader (``PageParser.feed`` in pieces of
  256 KiB, as the HTTP layer hands them over, then ``close``);
* ``whole``: bulkflow's small-page path (``PageParser.parse_whole``);
* ``orjson``: ``orjson.loads`` of the page, rows not taken out;
* ``ijson.items``: ijson's C backend, ``ijson.items`` once per table.

Figures are best-of-``--repeat`` and also given as ratios to ``orjson`` in
the same run, because the machine is shared and noisy.

    python benchmarks/parser.py --rows 100000 --page-sizes 1000,50000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Callable, Sequence

import ijson
import orjson

from bulkflow._bench._server import render_book
from bulkflow.emulator import DEMO_CODE, DEMO_SECRET, CatalogStore, catalog_source
from bulkflow.export import PageParser

PIECE = 256 * 1024


def stream(page: bytes) -> int:
    parser = PageParser(max_chunk_rows=500)
    rows = 0
    for start in range(0, len(page), PIECE):
        rows += _rows(parser.feed(page[start : start + PIECE]))
    return rows + _rows(parser.close())


def whole(page: bytes) -> int:
    return _rows(PageParser(max_chunk_rows=500).parse_whole(page))


def with_orjson(page: bytes) -> int:
    return sum(len(rows) for rows in orjson.loads(page)["data"].values())


def with_items(page: bytes) -> int:
    tables = [str(table) for table, _ in ijson.kvitems(page, "data")]
    return sum(
        1
        for table in tables
        for _ in ijson.items(page, f"data.{table}.item", use_float=True)
    )


def _rows(events: Sequence[object]) -> int:
    return sum(len(getattr(event, "rows", ())) for event in events)


WAYS: dict[str, Callable[[bytes], int]] = {
    "stream": stream,
    "whole": whole,
    "orjson": with_orjson,
    "ijson.items": with_items,
}


def measure(pages: list[bytes], repeat: int) -> dict[str, float]:
    """Best microseconds per row of each way over ``pages``."""
    best: dict[str, float] = {}
    expected = sum(with_orjson(page) for page in pages)
    for _ in range(repeat):
        for name, way in WAYS.items():
            gc.collect()
            started = time.perf_counter()
            rows = sum(way(page) for page in pages)
            seconds = time.perf_counter() - started
            if rows != expected:
                raise SystemExit(f"{name} read {rows} rows, orjson {expected}")
            per_row = seconds / rows * 1e6
            best[name] = min(best.get(name, per_row), per_row)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--page-sizes", default="1000,50000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(size) for size in args.page_sizes.split(",")]

    store = CatalogStore.open(None)
    store.load(catalog_source(f"synthetic:{args.rows}", seed=0))
    store.put_connector(DEMO_CODE, DEMO_SECRET, kind="export", options={})
    gc.set_threshold(100_000, 50, 100)  # as an export run sets it
    print(f"{'page size':>10} {'way':>12} {'µs/row':>8} {'÷ orjson':>9}")
    for size in sizes:
        book = asyncio.run(render_book(store, [size], public_host="127.0.0.1:1"))
        pages = [book.first[size], *book.by_token.values()]
        best = measure(pages, args.repeat)
        for name, per_row in best.items():
            ratio = per_row / best["orjson"]
            print(f"{size:>10,} {name:>12} {per_row:>8.2f} {ratio:>9.2f}")


if __name__ == "__main__":
    main()
