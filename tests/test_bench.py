"""Specification tests for ``bulkflow bench export``: the smoke run, end to end."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from bulkflow._bench._baselines import find_next_page
from bulkflow._bench._cli import SMOKE_ROWS, add_bench_parser, run_bench
from bulkflow._bench._report import targets
from bulkflow.emulator._synthetic import load_synthetic

FEED_TABLES = ("catalogue", "products", "product_formats")


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv`` the way the ``bulkflow`` command line does."""
    parser = argparse.ArgumentParser(prog="bulkflow")
    add_bench_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """Run ``bench export --smoke`` once; return its JSON report and work folder."""
    folder = tmp_path_factory.mktemp("bench")
    report, work = folder / "smoke.json", folder / "work"
    argv = ["bench", "export", "--smoke", "--json", str(report)]
    status = run_bench(parse([*argv, "--work-dir", str(work)]))
    assert status == 0
    return orjson.loads(report.read_bytes()), work


def get(report: dict[str, Any], dotted: str) -> object:
    """The value at a dotted path of the report."""
    value: Any = report
    for key in dotted.split("."):
        value = value[key]
    return value


def feed_rows_in(db: Path) -> int:
    """Rows of the feed's three tables in one SQLite file."""
    connection = sqlite3.connect(db)
    try:
        return sum(
            connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in FEED_TABLES
        )
    finally:
        connection.close()


RATES = [
    "bulkflow.rows_per_s",
    "bulkflow.peak_rss_mib",
    "baselines.naive.rows_per_s",
    "baselines.naive.peak_rss_mib",
    "ceilings.parse_rows_per_s",
    "ceilings.sink_rows_per_s",
    "ceilings.body_mb_per_s",
    "ceilings.orjson_rows_per_s",
    "ratios.bulkflow_vs_naive",
    "ratios.bulkflow_vs_min_ceiling",
]


@pytest.mark.parametrize("dotted", RATES)
def test_smoke_report_has_a_positive_figure(
    smoke: tuple[dict[str, Any], Path], dotted: str
) -> None:
    """Each headline figure of the smoke run is present and above zero."""
    report, _ = smoke
    value = get(report, dotted)
    assert isinstance(value, int | float)
    assert value > 0


def test_smoke_report_describes_the_machine(
    smoke: tuple[dict[str, Any], Path],
) -> None:
    """The report names the CPU, cores, memory, Python, ijson backend, versions."""
    machine = smoke[0]["machine"]
    for key in ("cpu", "cores", "memory_mib", "python", "ijson_backend"):
        assert machine[key]
    assert machine["versions"]["bulkflow"]
    assert smoke[0]["failures"] == []


@pytest.mark.parametrize("baseline", ["dlt_duckdb", "dlt_parquet"])
def test_smoke_skips_dlt_with_a_reason(
    smoke: tuple[dict[str, Any], Path], baseline: str
) -> None:
    """The smoke run leaves the dlt baselines out, installed or not, and says so."""
    dlt = smoke[0]["baselines"][baseline]
    assert "--smoke" in dlt["skipped"]


@pytest.mark.parametrize("client", ["bulkflow", "naive"])
def test_each_client_wrote_every_row_of_the_feed(
    smoke: tuple[dict[str, Any], Path], client: str
) -> None:
    """bulkflow and the naive baseline each hold all the synthetic catalog's rows."""
    _, work = smoke
    expected = sum(1 for _ in load_synthetic(SMOKE_ROWS, seed=0).rows())
    [db] = work.glob(f"{client}-p*-r0-c0.sqlite")
    assert feed_rows_in(db) == expected


def test_smoke_overrides_the_scenario() -> None:
    """--smoke measures 5,000 rows at page size 1,000 whatever else is asked."""
    from bulkflow._bench._cli import plan_from_args

    args = parse(["bench", "export", "--smoke", "--rows", "9000000"])
    plan = plan_from_args(args, Path("unused"))
    assert (plan.rows, plan.page_sizes, plan.headline) == (5000, (1000,), 1000)


def test_page_sizes_below_the_service_minimum_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A sweep with a page size under 500 rows is a usage error naming it."""
    with pytest.raises(SystemExit):
        parse(["bench", "export", "--page-sizes", "1000,100"])
    assert "'1000,100'" in capsys.readouterr().err


def test_targets_are_judged_in_their_direction() -> None:
    """Ratios must reach their bound from above, memory from below; none is unjudged."""
    checked = targets(
        {
            "bulkflow_vs_naive": 2.5,
            "bulkflow_vs_min_ceiling": 0.5,
            "peak_rss_mib": 149.0,
            "rss_largest_vs_smallest_page": None,
        }
    )
    met = {name: check["met"] for name, check in checked.items()}
    assert met == {
        "bulkflow_vs_naive": True,
        "bulkflow_vs_min_ceiling": False,
        "peak_rss_mib": True,
        "rss_largest_vs_smallest_page": None,
    }


def test_next_page_is_read_from_the_header_only() -> None:
    """find_next_page takes the member before data, not a key inside the rows."""
    head = b'{"time":1,"next_page":"http://h/?code=C&page_token=t2","data":{'
    assert find_next_page(head) == "http://h/?code=C&page_token=t2"
    inside = b'{"time":1,"data":{"t":[["M",1,{"next_page":"http://evil/"}]]}}'
    assert find_next_page(inside) is None
    assert find_next_page(b'{"time":1,"next_page":"","data":{}}') is None


# -- measured children -----------------------------------------------------------


def test_a_childs_peak_memory_is_its_own_not_the_harnesss(tmp_path: Path) -> None:
    """A tiny command started by a harness holding 300 MiB reports far less.

    Linux carries the memory high-water mark across fork and exec, so a
    command started straight from the harness would report the harness's.
    """
    from bulkflow._bench._children import run_children

    held = bytearray(300 * 2**20)
    held[::4096] = b"x" * len(held[::4096])
    [child] = run_children(
        [[sys.executable, "-c", "pass"]], [tmp_path / "pass.log"], timeout=60
    )
    assert child.returncode == 0
    assert 0 < child.peak_rss_mib < 100
    assert held[0] == ord("x")


def test_a_child_that_holds_memory_reports_it(tmp_path: Path) -> None:
    """A command that fills 200 MiB reports a peak of at least 200 MiB."""
    from bulkflow._bench._children import run_children

    fill = "block = b'x' * (200 * 2**20)"
    [child] = run_children(
        [[sys.executable, "-c", fill]], [tmp_path / "fill.log"], timeout=60
    )
    assert child.returncode == 0
    assert child.peak_rss_mib >= 200


def test_a_child_past_its_deadline_is_stopped_with_its_command(tmp_path: Path) -> None:
    """The command is ended by its PID, reported as timed out, and gone."""
    from bulkflow._bench._children import run_children

    log = tmp_path / "sleep.log"
    sleep = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"
    started = time.monotonic()
    [child] = run_children([[sys.executable, "-c", sleep]], [log], timeout=1.0)
    assert time.monotonic() - started < 15
    assert child.timed_out and child.failure() is not None
    pid = int(log.read_text().split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
