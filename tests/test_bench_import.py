"""Specification tests for ``bulkflow bench import``: the smoke run, end to end."""

from __future__ import annotations

import argparse
import math
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from bulkflow._bench._cli import add_bench_parser
from bulkflow._bench._cli_import import (
    SMOKE_BATCH_SIZE,
    SMOKE_ITEMS,
    SMOKE_RATE,
    import_plan_from_args,
    run_bench_import,
)
from bulkflow._bench._import_server import CallError, Receipt
from bulkflow.import_ import Batcher, ImportItem

SMOKE_CALLS = math.ceil(SMOKE_ITEMS / SMOKE_BATCH_SIZE)


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv`` the way the ``bulkflow`` command line does."""
    parser = argparse.ArgumentParser(prog="bulkflow")
    add_bench_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """Run ``bench import --smoke`` once; return its JSON report and work folder."""
    folder = tmp_path_factory.mktemp("bench-import")
    report, work = folder / "smoke.json", folder / "work"
    argv = ["bench", "import", "--smoke", "--json", str(report)]
    status = run_bench_import(parse([*argv, "--work-dir", str(work)]))
    assert status == 0
    return orjson.loads(report.read_bytes()), work


def get(report: dict[str, Any], dotted: str) -> object:
    """The value at a dotted path of the report (numbers index lists)."""
    value: Any = report
    for key in dotted.split("."):
        value = value[int(key)] if key.isdigit() else value[key]
    return value


def refs_in_file(path: Path) -> dict[str, int]:
    """Distinct REFs per table of a JSONL items file: what a server must hold."""
    refs: dict[str, set[str]] = {}
    for line in path.read_bytes().splitlines():
        record = orjson.loads(line)
        refs.setdefault(record["table"], set()).add(str(record["item"]["REF"]))
    return {table: len(found) for table, found in refs.items()}


def server_log(work: Path, run: str) -> dict[str, Any]:
    """What the server of one measured run wrote when it stopped."""
    log: dict[str, Any] = orjson.loads((work / f"{run}-server.json").read_bytes())
    return log


def most_in_a_second(moments: list[float]) -> int:
    """The most of ``moments`` within any window ``[t, t + 1)`` that starts at one."""
    return max(
        (sum(1 for u in moments if t <= u < t + 1.0) for t in moments), default=0
    )


SMOKE_RUNS = [
    "ceilings-b200-a0",
    "bulkflow-b200-a0",
    "naive-b200-a0",
    "bulkflow-b200-r5pers-a0",
    "naive-b200-r5pers-a0",
]


def test_the_smoke_runs_are_the_ones_measured() -> None:
    """The run names below follow the smoke scenario: batch 200 and 5/s."""
    assert (SMOKE_BATCH_SIZE, SMOKE_RATE) == (200, 5.0)


@pytest.mark.parametrize("run", SMOKE_RUNS)
def test_every_item_of_the_file_reached_the_server(
    smoke: tuple[dict[str, Any], Path], run: str
) -> None:
    """Each server holds every REF of every table of the items file."""
    _, work = smoke
    expected = refs_in_file(work / "items.jsonl")
    assert sum(expected.values()) == SMOKE_ITEMS
    assert server_log(work, run)["refs"] == expected


@pytest.mark.parametrize("run", ["bulkflow-b200-a0", "bulkflow-b200-r5pers-a0"])
def test_bulkflow_sends_one_call_per_batch(
    smoke: tuple[dict[str, Any], Path], run: str
) -> None:
    """bulkflow's calls are the items over the batch size, none refused."""
    log = server_log(smoke[1], run)
    assert len(log["arrivals"]) == SMOKE_CALLS
    assert log["refusals"] == []


def test_bulkflow_never_passes_the_budget_in_any_second(
    smoke: tuple[dict[str, Any], Path],
) -> None:
    """Every call that reached the server, in any sliding second: at most 5."""
    log = server_log(smoke[1], "bulkflow-b200-r5pers-a0")
    assert log["rate_limit"] == "5/s"
    assert most_in_a_second(log["arrivals"] + log["refusals"]) <= SMOKE_RATE


def test_the_naive_client_is_refused_and_the_server_holds_the_line(
    smoke: tuple[dict[str, Any], Path],
) -> None:
    """Sending as fast as it can, the naive client meets error 10; the server
    lets in no more than the budget in any second, and every batch in the end."""
    log = server_log(smoke[1], "naive-b200-r5pers-a0")
    assert len(log["refusals"]) >= 1
    assert len(log["arrivals"]) == SMOKE_CALLS
    assert most_in_a_second(log["arrivals"]) <= SMOKE_RATE
    assert most_in_a_second(log["arrivals"] + log["refusals"]) > SMOKE_RATE


def test_the_report_gives_the_server_figures(
    smoke: tuple[dict[str, Any], Path],
) -> None:
    """The rate figures of the report are the server log's, not the client's."""
    report, work = smoke
    [entry] = report["rates"]
    assert (entry["rate"], entry["batch_size"]) == (SMOKE_RATE, SMOKE_BATCH_SIZE)
    for kind in ("bulkflow", "naive"):
        log = server_log(work, f"{kind}-b200-r5pers-a0")
        result = entry[kind]
        assert result["refused"] == len(log["refusals"])
        events = log["arrivals"] + log["refusals"]
        assert result["max_calls_in_any_1s"] == most_in_a_second(events)
        arrivals = sorted(log["arrivals"])
        pace = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
        assert result["achieved_vs_budget"] == pytest.approx(pace / SMOKE_RATE, 0.01)


POSITIVE = [
    "bulkflow.items_per_s",
    "bulkflow.peak_rss_mib",
    "baselines.naive.items_per_s",
    "baselines.naive.peak_rss_mib",
    "ceilings.post_items_per_s",
    "ceilings.encode_items_per_s",
    "ratios.bulkflow_vs_naive",
    "ratios.bulkflow_vs_post_ceiling",
    "rates.0.bulkflow.items_per_s",
    "rates.0.bulkflow.achieved_vs_budget",
    "rates.0.naive.items_per_s",
    "rates.0.naive.achieved_vs_budget",
]


@pytest.mark.parametrize("dotted", POSITIVE)
def test_smoke_report_has_a_positive_figure(
    smoke: tuple[dict[str, Any], Path], dotted: str
) -> None:
    """Each headline figure of the smoke run is present and above zero."""
    value = get(smoke[0], dotted)
    assert isinstance(value, int | float)
    assert value > 0


def test_smoke_report_describes_the_scenario_and_the_machine(
    smoke: tuple[dict[str, Any], Path],
) -> None:
    """The report says what ran, on what, and that nothing failed."""
    report = smoke[0]
    assert report["scenario"]["items"] == SMOKE_ITEMS
    assert report["scenario"]["batch_sizes"] == [SMOKE_BATCH_SIZE]
    assert report["scenario"]["server"] == "lean"
    for key in ("cpu", "cores", "memory_mib", "python"):
        assert report["machine"][key]
    assert report["machine"]["versions"]["bulkflow"]
    assert report["failures"] == []


def test_the_whole_emulator_applies_every_item(tmp_path: Path) -> None:
    """--server emulator: the items land in the emulator's catalog, by REF."""
    work = tmp_path / "work"
    argv = ["bench", "import", "--items", "300", "--batch-size", "100"]
    argv += ["--rates", "none", "--server", "emulator", "--work-dir", str(work)]
    assert run_bench_import(parse(argv)) == 0
    expected = refs_in_file(work / "items.jsonl")
    assert sum(expected.values()) == 300
    for run in ("ceilings-b100-a0", "bulkflow-b100-a0", "naive-b100-a0"):
        log = server_log(work, run)
        assert log["mode"] == "emulator"
        assert log["refs"] == expected


# -- options -------------------------------------------------------------------


def test_smoke_overrides_the_scenario() -> None:
    """--smoke measures 2,000 items at batch size 200 and 5/s whatever is asked."""
    args = parse(["bench", "import", "--smoke", "--items", "900000", "--rates", "50"])
    plan = import_plan_from_args(args, Path("unused"))
    assert (plan.items, plan.batch_sizes, plan.headline) == (2000, (200,), 200)
    assert (plan.rates, plan.rate_batch_size) == ((5.0,), 200)


def test_rate_scenarios_default_to_the_smallest_batch_size() -> None:
    """The rate scenarios make the most calls unless told otherwise, and at
    least 4 s of calls at the fastest budget."""
    args = parse(["bench", "import", "--batch-sizes", "5000,1000", "--rates", "5,20"])
    plan = import_plan_from_args(args, Path("unused"))
    assert plan.batch_sizes == (5000, 1000)
    assert plan.headline == 5000
    assert plan.rates == (5.0, 20.0)
    assert plan.rate_batch_size == 1000
    few = ["--items", "20000", "--batch-sizes", "1000,5000", "--rates", "5,20"]
    plan = import_plan_from_args(parse(["bench", "import", *few]), Path("unused"))
    assert plan.rate_batch_size == 20_000 // (4 * 20)
    args = parse(["bench", "import", "--rates", "none", "--rate-batch-size", "7"])
    plan = import_plan_from_args(args, Path("unused"))
    assert (plan.rates, plan.rate_batch_size, plan.batch_sizes) == ((), 7, (5000,))


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--batch-sizes", "1000,60000"),
        ("--batch-sizes", "0"),
        ("--batch-sizes", "ten"),
        ("--rates", "0"),
        ("--rates", "5,-1"),
        ("--rates", "5000"),
        ("--items", "50"),
        ("--batch-size", "50001"),
        ("--concurrency", "0"),
        ("--server", "nginx"),
    ],
)
def test_bad_options_are_refused_naming_the_value(
    capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    """Each bad value is a usage error that quotes it."""
    with pytest.raises(SystemExit):
        parse(["bench", "import", option, value])
    assert value in capsys.readouterr().err


# -- the lean server's receipt ---------------------------------------------------


def encoded(items: list[ImportItem], encoding: str = "form") -> bytes:
    """One body, as bulkflow encodes a batch of ``items``."""
    batcher = Batcher(
        max_items=len(items), encoding="json" if encoding == "json" else "form"
    )
    for item in items:
        assert batcher.add(item) is None
    batch = batcher.flush()
    assert batch is not None
    return batch.body({"input_data_directly": "1"})


ODD_TABLES = ["products", "my table", "tábla", "a%5Db"]


@pytest.mark.parametrize("encoding", ["form", "json"])
@pytest.mark.parametrize("table", ODD_TABLES)
def test_the_receipt_reads_every_ref_of_a_bulkflow_batch(
    encoding: str, table: str
) -> None:
    """Whatever the table's name, the receipt counts each item under its REF."""
    refs = ["P-1", "P 2", "P&3", "P=4", "ü5", "P-1"]
    items = [ImportItem(table, {"REF": ref, "price": 1}) for ref in refs]
    items.append(ImportItem("catalogue", {"REF": "C-1", "REF_PARENT": "C-0"}))
    receipt = Receipt()
    content_type = "application/json" if encoding == "json" else "form"
    counts = receipt.take(encoded(items, encoding), content_type)
    assert receipt.refs == {table: set(refs), "catalogue": {"C-1"}}
    assert counts.new == {table: 5, "catalogue": 1}
    assert counts.updated == {table: 1}
    assert receipt.items == len(items)


def test_the_receipt_counts_updates_and_deletions_across_calls() -> None:
    """A REF seen before is an update; a deletion of a known REF removes it."""
    receipt = Receipt()
    first = [ImportItem("products", {"REF": ref}) for ref in ("A", "B")]
    receipt.take(encoded(first), "application/x-www-form-urlencoded")
    again = [ImportItem("products", {"REF": "A"})]
    gone = [ImportItem("products", {"REF": ref}, delete=True) for ref in ("B", "Z")]
    counts = receipt.take(encoded(again + gone), "application/x-www-form-urlencoded")
    assert (counts.new, counts.updated, counts.deleted) == (
        {},
        {"products": 1},
        {"products": 1},
    )
    assert receipt.refs == {"products": {"A"}}
    assert Counter(counts.response()["items_affected"]) == Counter({"products": 2})


def test_the_receipt_refuses_what_the_emulator_refuses() -> None:
    """An item without a REF, or a body that is not a call, is error 1."""
    with pytest.raises(CallError, match="no REF"):
        Receipt().take(b'{"input_data": {"products": [{"price": 1}]}}', "")
    with pytest.raises(CallError):
        Receipt().take(b'{"input_data": ', "application/json")
