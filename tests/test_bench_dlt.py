"""Specification tests for the dlt baselines of ``bulkflow bench export``.

The row mapping is tested without dlt; the client itself, end to end against
the replay server, only where dlt is installed (``pip install 'bulkflow[dlt]'``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from bulkflow._bench._dlt import DUCKDB_FILE, column_names, row_dict
from bulkflow._bench._run import SECRET_ENV, Plan, ServerProcess, child_env
from bulkflow.emulator import DEMO_CODE
from bulkflow.emulator._synthetic import load_synthetic

FEED_TABLES = {"catalogue", "products", "product_formats"}

#: The catalog the end-to-end tests serve: three pages of 1,000 rows.
ROWS, PAGE_SIZE = 3000, 1000

LAYOUT: list[str | dict[str, Any]] = [
    "STATUS",
    "ID",
    "ID_catalogue",
    "REF",
    "product_tags",
    {"product_image": ["STATUS", "ID", "ORG", "THM"]},
]


def test_column_names_name_media_columns_by_their_key() -> None:
    """A media column's one-key object stands for the column of that name."""
    names = column_names(LAYOUT)
    assert names == ["STATUS", "ID", "ID_catalogue", "REF", "product_tags"] + [
        "product_image"
    ]


def test_a_row_becomes_a_dict_by_position_without_its_status() -> None:
    """Each value goes under the name at its position; STATUS is left out."""
    image = [["M", 7, "https://m/7.jpg", "https://m/thm/7.jpg"]]
    row = ["M", 200, [10, 12], "P-200", ["new"], image]
    assert row_dict(column_names(LAYOUT), row) == {
        "ID": 200,
        "ID_catalogue": [10, 12],
        "REF": "P-200",
        "product_tags": ["new"],
        "product_image": image,
    }


def test_a_row_of_another_length_than_its_schema_is_refused() -> None:
    """A row with a value missing cannot be mapped silently."""
    with pytest.raises(ValueError):
        row_dict(column_names(LAYOUT), ["M", 200, [10], "P-200", ["new"]])


# The tests below run dlt itself.


def feed_rows(rows: int) -> int:
    """Rows in the synthetic feed, counted from the catalog, not from a client."""
    return sum(1 for _ in load_synthetic(rows, seed=0).rows())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A replay server of the synthetic catalog, for this module's dlt runs."""
    for name in ("dlt", "duckdb", "pyarrow"):
        pytest.importorskip(name)
    work = tmp_path_factory.mktemp("dlt-server")
    plan = Plan(rows=ROWS, page_sizes=(PAGE_SIZE,), headline=PAGE_SIZE, timeout=60)
    with ServerProcess(plan, work / "server.log") as running:
        yield running


def run_dlt_client(url: str, destination: str, folder: Path) -> dict[str, Any]:
    """Run the dlt client as the harness does; return its report."""
    report = folder / "report.json"
    argv = [sys.executable, "-m", "bulkflow._bench._dlt", destination]
    argv += ["--url", url, "--code", DEMO_CODE, "--secret-env", SECRET_ENV]
    argv += ["--into", str(folder / "into"), "--page-size", str(PAGE_SIZE)]
    argv += ["--report", str(report)]
    subprocess.run(argv, env=child_env(), check=True, timeout=120)
    result: dict[str, Any] = orjson.loads(report.read_bytes())
    return result


def test_dlt_loads_every_row_of_the_feed_into_duckdb(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Every row of every page arrives in the DuckDB file, one table per feed table."""
    import duckdb

    report = run_dlt_client(server.url, "duckdb", tmp_path)

    assert report["rows"] == feed_rows(ROWS)
    assert report["pages"] == ROWS // PAGE_SIZE
    with duckdb.connect(str(tmp_path / "into" / DUCKDB_FILE), read_only=True) as db:
        counts = {
            table: db.execute(f"SELECT count(*) FROM feed.{table}").fetchall()[0][0]
            for table in FEED_TABLES
        }
        ids = db.execute("SELECT count(DISTINCT id) FROM feed.products").fetchall()
    assert counts == report["tables"]
    assert ids[0][0] == counts["products"]


def test_dlt_writes_every_row_of_the_feed_as_parquet(
    server: ServerProcess, tmp_path: Path
) -> None:
    """The Parquet files of the three tables hold every row of the feed."""
    import pyarrow.parquet

    report = run_dlt_client(server.url, "parquet", tmp_path)

    folder = tmp_path / "into" / "parquet" / "feed"
    counts = {
        table: sum(
            pyarrow.parquet.read_table(path).num_rows
            for path in (folder / table).glob("*.parquet")
        )
        for table in FEED_TABLES
    }
    assert sum(counts.values()) == report["rows"] == feed_rows(ROWS)
    assert counts == report["tables"]


def test_later_pages_are_plain_gets_and_an_empty_next_page_ends_the_run() -> None:
    """After the signed POST, each page is a GET without body; "" means no more."""
    pytest.importorskip("dlt")
    from requests import Request, Response

    from bulkflow._bench._dlt import _next_page_paginator

    paginator = _next_page_paginator()
    request = Request("POST", "http://127.0.0.1:1/", data="pagination=1000")
    request.headers = {"Content-Type": "application/x-www-form-urlencoded"}
    page = Response()
    page._content = b'{"next_page": "http://127.0.0.1:1/?page_token=t2", "data": {}}'
    paginator.update_state(page)
    paginator.update_request(request)
    assert (request.method, request.url) == ("GET", "http://127.0.0.1:1/?page_token=t2")
    assert request.data is None and not request.headers

    last = Response()
    last._content = b'{"next_page": "", "data": {}}'
    paginator.update_state(last)
    assert not paginator.has_next_page
