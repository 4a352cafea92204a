"""The dlt baselines: dlt's REST client and a pipeline into DuckDB or Parquet.

This is the export written the way a dlt user would write it for this API:
a ``RESTClient`` whose paginator follows the ``next_page`` member of each
page, one dlt resource that turns each table's positional rows into
dicts with the page's ``data_schema`` and sends them to a dlt table of the
same name (``catalogue``, ``products``, ``product_formats``, or whatever
tables the feed has), and ``pipeline.run`` into a DuckDB file or into
Parquet files on the local filesystem. It takes the options of the other
baselines, except that ``--into`` is a folder: the pipeline's working
folder, the DuckDB file and the Parquet files all go under it.

The choices a user would make for a full refresh of this feed:

- ``write_disposition="replace"`` with ``primary_key="ID"``. A refresh
  delivers the whole catalog, so replacing each table drops whatever the
  connector no longer sends, with no staging table and no merge query;
  ``merge`` is what incremental runs would need.
- ``D`` rows are skipped and counted (``rows_deleted`` in the report): in a
  replaced table an item the feed calls deleted is simply absent.
- ``max_table_nesting=0``: lists (tags, ``ID_catalogue``, media tuples) stay
  one JSON value per row, as bulkflow and the naive client store them,
  rather than dlt unpacking each into child tables.
- ``loader_file_format="parquet"`` into DuckDB too, as dlt's DuckDB page
  advises where pyarrow is installed (the ``dlt`` extra installs it): with
  DuckDB's default, one large ``INSERT ... VALUES`` statement per file, a
  run of 20,000 rows here took about 4 times as long and peaked at about
  1 GB of memory.
- Defaults otherwise: the normalize step in this process (one worker),
  the load's thread pool, dlt's retrying HTTP session.

``RESTClient`` parses each page twice, once to extract the data and once in
the paginator to find ``next_page``; that is how dlt's ``JSONLinkPaginator``
works, and it is part of what is measured.

Run as ``python -m bulkflow._bench._dlt duckdb|parquet OPTIONS``. dlt is an
optional extra (``pip install 'bulkflow[dlt]'``), imported only once a run
starts, and its imports count in the process's peak memory as the other
clients' do. The report's ``rows`` are counted in the destination after the
load, not by the client; ``seconds`` run from before the first request to
the end of ``pipeline.run``. dlt's anonymous telemetry is switched off: the
benchmark talks to nothing but the replay server.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from bulkflow._bench._baselines import first_request

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from dlt import Pipeline
    from dlt.extract.items import DataItemWithMeta

#: The destinations a run can load into, as the command line names them.
DESTINATIONS = ("duckdb", "parquet")

#: The dataset (DuckDB schema, Parquet folder) the feed's tables go into.
DATASET = "feed"

#: The DuckDB file under ``--into``: not named after the dataset, which
#: DuckDB could not then tell from the file's catalog.
DUCKDB_FILE = "bench.duckdb"

#: dlt's own settings for every run, given through its environment variables.
_DLT_ENVIRONMENT = {
    # No anonymous usage report to dltHub's servers: a benchmark must talk to
    # the replay server only.
    "RUNTIME__DLTHUB_TELEMETRY": "false",
}


def column_names(layout: Sequence[str | dict[str, Any]]) -> list[str]:
    """The column names of a ``data_schema`` table, media columns included.

    A media column is a one-key object, ``{"product_image": [sub-labels]}``;
    its name is the key.
    """
    return [entry if isinstance(entry, str) else next(iter(entry)) for entry in layout]


def row_dict(names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    """One positional row as a dict keyed by column name, without ``STATUS``.

    Raises:
        ValueError: the row and the names differ in length.
    """
    return dict(zip(names[1:], row[1:], strict=True))


@dataclass
class Tally:
    """What the resource saw while dlt pulled pages through it."""

    pages: int = 0
    rows: int = 0
    deleted: int = 0


def feed_resource(
    url: str, code: str, secret: str, *, page_size: int, tally: Tally
) -> Any:
    """The feed as one dlt resource that routes each table's rows to its table."""
    import dlt
    from dlt.sources.helpers.rest_client.client import RESTClient

    query, body, headers = first_request(code, secret, page_size)
    client = RESTClient(base_url=url, paginator=_next_page_paginator())

    def feed() -> Iterator[DataItemWithMeta]:
        # "$" selects the whole page: each table's rows need its data_schema.
        pages = client.paginate(
            url,
            method="POST",
            params=query,
            data=body,
            headers=headers,
            data_selector="$",
        )
        for [page] in pages:
            tally.pages += 1
            yield from _page_items(page, tally)

    return dlt.resource(
        feed,
        name="feed",
        primary_key="ID",
        write_disposition="replace",
        max_table_nesting=0,
    )


def _page_items(page: dict[str, Any], tally: Tally) -> Iterator[DataItemWithMeta]:
    """Each table's rows of one page as dicts, marked with the table's name."""
    import dlt

    if page.get("error"):
        raise RuntimeError(f"the connector answered error {page['error']!r}")
    for table, rows in (page.get("data") or {}).items():
        names = column_names(page["data_schema"][table])
        items = [row_dict(names, row) for row in rows if row[0] != "D"]
        tally.rows += len(items)
        tally.deleted += len(rows) - len(items)
        yield dlt.mark.with_table_name(items, table)


def _next_page_paginator() -> Any:
    """A ``JSONLinkPaginator`` on ``next_page`` that GETs every later page.

    dlt's paginators repeat the first request with a new URL; this API
    wants the first page by a signed POST with a form body and every later
    one by a plain GET of ``next_page``. The last page has no ``next_page``
    (or, from some servers, an empty one), which must end the run rather
    than fetch the current URL again.
    """
    from dlt.sources.helpers.rest_client.paginators import JSONLinkPaginator
    from requests import Request, Response

    class NextPageLink(JSONLinkPaginator):  # type: ignore[misc,unused-ignore]
        def update_state(
            self, response: Response, data: list[Any] | None = None
        ) -> None:
            super().update_state(response, data)
            if not self._next_reference:
                self._has_next_page = False

        def update_request(self, request: Request) -> None:
            super().update_request(request)
            request.method = "GET"
            request.data = None
            request.headers = {}

    return NextPageLink(next_url_path="next_page")


def open_pipeline(destination: str, into: Path) -> Pipeline:
    """A dlt pipeline into ``destination`` with all of its files under ``into``."""
    import dlt

    into = into.resolve()
    if destination == "duckdb":
        target: Any = dlt.destinations.duckdb(str(into / DUCKDB_FILE))
    else:
        target = dlt.destinations.filesystem(bucket_url=(into / "parquet").as_uri())
    pipeline: Pipeline = dlt.pipeline(
        pipeline_name=f"bench_{destination}",
        destination=target,
        dataset_name=DATASET,
        pipelines_dir=str(into / "pipelines"),
    )
    return pipeline


def count_loaded(destination: str, into: Path) -> dict[str, int]:
    """Rows per feed table found in the destination, read without dlt."""
    if destination == "duckdb":
        return _count_duckdb(into / DUCKDB_FILE)
    return _count_parquet(into / "parquet" / DATASET)


def _count_duckdb(path: Path) -> dict[str, int]:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as db:
        found = db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
            [DATASET],
        ).fetchall()
        counts: dict[str, int] = {}
        for (name,) in found:
            if not str(name).startswith("_dlt"):
                quoted = f'"{DATASET}"."{name}"'
                [(rows,)] = db.execute(f"SELECT count(*) FROM {quoted}").fetchall()
                counts[str(name)] = int(rows)
    return counts


def _count_parquet(folder: Path) -> dict[str, int]:
    import pyarrow.parquet

    counts: dict[str, int] = {}
    for table in sorted(folder.iterdir()):
        if table.is_dir() and not table.name.startswith("_dlt"):
            files = table.glob("*.parquet")
            rows = sum(pyarrow.parquet.ParquetFile(f).metadata.num_rows for f in files)
            counts[table.name] = int(rows)
    return counts


def dlt_export(
    destination: str, url: str, code: str, secret: str, into: Path, *, page_size: int
) -> dict[str, Any]:
    """Run the dlt client once; return its report."""
    os.environ.update(_DLT_ENVIRONMENT)
    into.mkdir(parents=True, exist_ok=True)
    tally = Tally()
    feed = feed_resource(url, code, secret, page_size=page_size, tally=tally)
    pipeline = open_pipeline(destination, into)

    started = time.perf_counter()
    pipeline.run(feed, loader_file_format="parquet")
    seconds = time.perf_counter() - started

    tables = count_loaded(destination, into)
    rows = sum(tables.values())
    return {
        "rows": rows,
        "pages": tally.pages,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds, 1) if seconds > 0 else 0.0,
        "rows_sent": tally.rows,
        "rows_deleted": tally.deleted,
        "tables": tables,
        "steps_seconds": _step_seconds(pipeline),
        "destination": destination,
    }


def _step_seconds(pipeline: Pipeline) -> dict[str, float]:
    """Seconds of each step of the last run: extract, normalize, load, and
    ``run``, all three together, as dlt's trace records them."""
    trace = pipeline.last_trace
    steps: dict[str, float] = {}
    for step in trace.steps if trace is not None else ():
        if step.finished_at is not None:
            elapsed = step.finished_at - step.started_at
            steps[str(step.step)] = round(elapsed.total_seconds(), 3)
    return steps


def parser() -> argparse.ArgumentParser:
    """The options: the other baselines' ones, ``--into`` being a folder."""
    main_parser = argparse.ArgumentParser(prog="python -m bulkflow._bench._dlt")
    main_parser.add_argument("destination", choices=DESTINATIONS)
    main_parser.add_argument("--url", required=True)
    main_parser.add_argument("--code", required=True)
    main_parser.add_argument("--secret-env", required=True)
    main_parser.add_argument("--into", required=True, type=Path, metavar="FOLDER")
    main_parser.add_argument("--page-size", type=int, required=True)
    main_parser.add_argument("--report", required=True)
    return main_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of a client process."""
    args = parser().parse_args(argv)
    secret = os.environ[args.secret_env]
    report = dlt_export(
        args.destination,
        args.url,
        args.code,
        secret,
        args.into,
        page_size=args.page_size,
    )
    Path(args.report).write_bytes(orjson.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
