"""Specification tests for the dlt baselines of ``bulkflow bench export``.

The row mapping, the skip reasons and the report's layout are tested without
dlt; the client itself, end to end against the replay server, only where
dlt is installed (``pip install 'bulkflow[dlt]'``).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

from bulkflow._bench._children import SECRET_ENV, ServerProcess, child_env
from bulkflow._bench._cli import add_bench_parser, dlt_skipped, plan_from_args
from bulkflow._bench._dlt import DUCKDB_FILE, column_names, row_dict
from bulkflow._bench._report import build_report, print_report
from bulkflow._bench._run import Plan, replay_argv
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


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv`` the way the ``bulkflow`` command line does."""
    parser = argparse.ArgumentParser(prog="bulkflow")
    add_bench_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


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


def no_spec(missing: str) -> Any:
    """A stand-in for ``importlib.util.find_spec`` that lacks one module."""
    real = importlib.util.find_spec

    def find_spec(name: str) -> object:
        return None if name == missing else real(name)

    return find_spec


@pytest.mark.parametrize("missing", ["dlt", "duckdb", "pyarrow"])
def test_dlt_baselines_are_skipped_without_dlt_and_its_extras(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    """Without dlt, DuckDB or pyarrow nothing of dlt runs, and the reason says
    what is missing and how to install it."""
    monkeypatch.setattr(importlib.util, "find_spec", no_spec(missing))
    args = parse(["bench", "export", "--rows", "5000"])
    reason = dlt_skipped(args)
    assert reason is not None and missing in reason and "bulkflow[dlt]" in reason
    assert plan_from_args(args, Path("unused")).dlt == ()


def test_dlt_baselines_run_when_installed_unless_told_not_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With every module there, both destinations run; --no-dlt and --smoke
    leave them out."""
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    args = parse(["bench", "export", "--rows", "5000"])
    assert plan_from_args(args, Path("unused")).dlt == ("duckdb", "parquet")
    for option in ("--no-dlt", "--smoke"):
        args = parse(["bench", "export", option])
        assert plan_from_args(args, Path("unused")).dlt == ()
        assert option in str(dlt_skipped(args))


def client(rate: float, rss: float) -> dict[str, Any]:
    """A client's figures as the harness records them."""
    return {"rows": 3000, "rows_per_s": rate, "peak_rss_mib": rss}


def test_the_report_lays_out_measured_dlt_baselines() -> None:
    """Measured dlt baselines go under baselines, into the ratios and the table."""
    plan = Plan(rows=3000, page_sizes=(1000,), headline=1000, dlt=("duckdb",))
    entry = {
        "page_size": 1000,
        "ceilings": {"parse_rows_per_s": 90_000.0, "sink_rows_per_s": 60_000.0},
        "bulkflow": client(30_000.0, 50.0),
        "naive": client(15_000.0, 80.0),
        "dlt_duckdb": client(3_000.0, 300.0),
    }
    raw = {"load_average_start": [0.0], "server": {}, "sweep": [entry]}
    report = build_report(plan, {**raw, "failures": []}, None)

    assert report["baselines"]["dlt_duckdb"]["peak_rss_mib"] == 300.0
    assert report["baselines"]["dlt_parquet"] == {"skipped": "not run"}
    assert report["ratios"]["bulkflow_vs_dlt_duckdb"] == 10.0
    out = io.StringIO()
    print_report(report, Console(file=out, width=120))
    [line] = [line for line in out.getvalue().splitlines() if "DuckDB" in line]
    assert "3,000" in line and "300.0" in line


def test_the_report_says_why_dlt_did_not_run() -> None:
    """Skipped dlt baselines carry the reason, in the JSON and under the table."""
    plan = Plan(rows=3000, page_sizes=(1000,), headline=1000)
    entry = {
        "page_size": 1000,
        "ceilings": {},
        "bulkflow": client(30_000.0, 50.0),
        "naive": client(15_000.0, 80.0),
    }
    raw = {"load_average_start": [0.0], "server": {}, "sweep": [entry], "failures": []}
    report = build_report(plan, raw, "not run: --no-dlt")
    for key in ("dlt_duckdb", "dlt_parquet"):
        assert report["baselines"][key] == {"skipped": "not run: --no-dlt"}
    out = io.StringIO()
    print_report(report, Console(file=out, width=120))
    assert "dlt baselines not run: --no-dlt" in out.getvalue()


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
    with ServerProcess(replay_argv(plan), work / "server.log", timeout=60) as running:
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


def test_bench_export_measures_both_dlt_baselines(tmp_path: Path) -> None:
    """Outside --smoke, with dlt installed, the report has both dlt baselines,
    each with every row of the feed, a rate and a peak memory."""
    for name in ("dlt", "duckdb", "pyarrow"):
        pytest.importorskip(name)
    from bulkflow._bench._cli import run_bench

    json_file = tmp_path / "bench.json"
    argv = ["bench", "export", "--rows", str(ROWS), "--page-size", str(PAGE_SIZE)]
    argv += ["--timeout", "120", "--json", str(json_file)]
    assert run_bench(parse(argv)) == 0

    report = orjson.loads(json_file.read_bytes())
    for key in ("dlt_duckdb", "dlt_parquet"):
        baseline = report["baselines"][key]
        assert baseline["rows_in_db"] == baseline["rows_expected"] == feed_rows(ROWS)
        assert baseline["rows_per_s"] > 0 and baseline["peak_rss_mib"] > 0
        assert report["ratios"][f"bulkflow_vs_{key}"] > 0
