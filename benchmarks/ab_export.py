"""A/B of export settings: interleaved runs in process against one replay server.

Each variant is a set of ``ExportRun`` settings; the rounds run every variant
once, in turn, so that a machine whose speed drifts over minutes drifts for
all of them alike. Prints each run's rows/s and, per variant, the median.

    python benchmarks/ab_export.py --page-size 1000 \\
        --variant streamed: --variant whole:whole_page_bytes=4194304
    python benchmarks/ab_export.py --variant c500:max_chunk_rows=500 \\
        --variant c2000:max_chunk_rows=2000 --pragma cache_size=-32768

A variant is ``NAME:KEY=VALUE,...`` with integer values for ExportRun's
keyword arguments (``whole_page_bytes``, ``max_chunk_rows``,
``max_buffered_chunks``, ``read_ahead``...); ``--pragma`` applies SQLite
pragmas to the sink of every variant named in ``--pragma-for`` (all when
not given).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

from bulkflow._bench._children import ServerProcess
from bulkflow._bench._run import Plan, replay_argv
from bulkflow.emulator import DEMO_CODE, DEMO_SECRET
from bulkflow.export import ExportConnector, ExportRun
from bulkflow.sinks import SQLiteSink


def variant(text: str) -> tuple[str, dict[str, int]]:
    """``NAME:KEY=VALUE,...`` → (name, settings)."""
    name, _, rest = text.partition(":")
    settings = {}
    for part in filter(None, rest.split(",")):
        key, _, value = part.partition("=")
        settings[key.strip()] = int(value)
    return name, settings


async def one_run(
    url: str, db: Path, page_size: int, settings: dict[str, int], pragmas: list[str]
) -> float:
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        path.unlink(missing_ok=True)
    sink = SQLiteSink(db)
    try:
        for pragma in pragmas:
            sink._db.execute(f"PRAGMA {pragma}")
        connector = ExportConnector(url, DEMO_CODE, DEMO_SECRET, page_size=page_size)
        report = await ExportRun(connector, sink, **settings).run()  # type: ignore[arg-type]
    finally:
        sink.close()
    return report.rows / report.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--page-size", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variant", type=variant, action="append", required=True)
    parser.add_argument("--pragma", action="append", default=[])
    parser.add_argument("--pragma-for", action="append", default=None)
    args = parser.parse_args()

    plan = Plan(rows=args.rows, page_sizes=(args.page_size,), headline=args.page_size)
    rates: dict[str, list[float]] = {name: [] for name, _ in args.variant}
    with tempfile.TemporaryDirectory(prefix="bulkflow-ab-") as work:
        folder = Path(work)
        with ServerProcess(
            replay_argv(plan), folder / "server.log", timeout=600
        ) as server:
            for round_ in range(1, args.rounds + 1):
                for name, settings in args.variant:
                    pragmas = (
                        args.pragma
                        if args.pragma_for in (None, []) or (name in args.pragma_for)
                        else []
                    )
                    rate = asyncio.run(
                        one_run(
                            server.url,
                            folder / "ab.sqlite",
                            args.page_size,
                            settings,
                            pragmas,
                        )
                    )
                    rates[name].append(rate)
                    print(f"round {round_} {name}: {rate:,.0f} rows/s", flush=True)
    for name, values in rates.items():
        print(
            f"{name}: median {statistics.median(values):,.0f} rows/s "
            f"({', '.join(f'{value:,.0f}' for value in values)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
