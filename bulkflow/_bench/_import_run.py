"""Run an import benchmark plan: each client against a server of its own.

Every measurement starts a fresh import server (``_import_server``, its own
process on 127.0.0.1, an empty catalog, no rate limit or the scenario's
``--rate-limit``), runs one client in a child process through
:func:`~bulkflow._bench._children.run_children` (its own peak RSS), stops
the server and reads what the server saw: the time of every call it let in
and of every call it refused for rate, the REFs it received per table and
the CPU it spent. Rate figures come from that log, not from the clients.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from bulkflow._bench._children import (
    SECRET_ENV,
    ServerProcess,
    best_of,
    read_child,
    run_children,
)
from bulkflow._bench._import_items import write_items
from bulkflow._bench._run import EXPORT_MODULE
from bulkflow.import_._limits import max_in_any_window

if TYPE_CHECKING:
    from collections.abc import Callable

#: The import connector every server serves.
IMPORT_CODE = "CN_BULKFLOW_BENCH_IMPORT"

#: The clients, as the report names them.
CLIENTS = ("ceilings", "bulkflow", "naive")


@dataclass(frozen=True)
class ImportPlan:
    """What one ``bench import`` measures.

    Attributes:
        items: items in the synthetic file every client sends.
        batch_sizes: items per call of the throughput scenarios, in order.
        headline: the batch size of the report's top-level figures.
        rates: the request budgets (per second) of the rate scenarios.
        rate_batch_size: items per call in the rate scenarios.
        concurrency: bulkflow's ``--concurrency``, and the POST ceiling's.
        server_mode: ``lean`` (REFs counted) or ``emulator`` (items applied).
        seed: the synthetic file's seed.
        repeat: runs of each measurement; the fastest counts.
        timeout: seconds any one child process may take.
        work_dir: where the items file, reports and logs go.
    """

    items: int
    batch_sizes: tuple[int, ...]
    headline: int
    rates: tuple[float, ...] = ()
    rate_batch_size: int = 1000
    concurrency: int = 4
    server_mode: str = "lean"
    seed: int = 0
    repeat: int = 1
    timeout: float = 1800.0
    work_dir: Path = Path("bench-work")

    @property
    def items_file(self) -> Path:
        """The JSONL file every client reads."""
        return self.work_dir / "items.jsonl"


def budget_text(rate: float) -> str:
    """A budget as ``bulkflow import --rate`` and the server take it: ``5/s``."""
    return f"{rate:g}/s"


def server_figures(
    stats: dict[str, Any], expected: dict[str, int], seconds: float | None
) -> dict[str, Any]:
    """What the server's log says of one client's run.

    ``max_calls_in_any_1s`` counts every call that reached the server in a
    sliding second, refused ones included; ``calls_per_s`` is the pace of
    the calls let in, from the first to the last.
    """
    arrivals = sorted(float(moment) for moment in stats["arrivals"])
    refusals = [float(moment) for moment in stats["refusals"]]
    received = {table: int(n) for table, n in stats["refs"].items()}
    figures: dict[str, Any] = {
        "mode": stats["mode"],
        "calls": len(arrivals),
        "refused": len(refusals),
        "max_calls_in_any_1s": max_in_any_window(arrivals + refusals, 1.0),
        "max_admitted_in_any_1s": max_in_any_window(arrivals, 1.0),
        "calls_per_s": None,
        "items_received": received,
        "items_expected": expected,
        "all_items_received": received == expected,
        "cpu_seconds": stats["cpu_seconds"],
        "busy": None,
        "peak_rss_mib": stats["peak_rss_mib"],
    }
    if len(arrivals) >= 2 and arrivals[-1] > arrivals[0]:
        pace = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
        figures["calls_per_s"] = round(pace, 2)
    if seconds:
        figures["busy"] = round(float(stats["cpu_seconds"]) / seconds, 3)
    return figures


class ImportBench:
    """Measure a plan: one server per measurement, one client against it."""

    def __init__(self, plan: ImportPlan, progress: Callable[[str], None]) -> None:
        self.plan = plan
        self.progress = progress
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.expected: dict[str, int] = {}
        self.servers: list[dict[str, Any]] = []

    def prepare(self) -> None:
        """Write the items file."""
        plan = self.plan
        self.progress(f"writing {plan.items:,} synthetic items to {plan.items_file}")
        self.expected = write_items(plan.items_file, plan.items, plan.seed)

    def throughput(self, batch_size: int) -> dict[str, Any]:
        """The ceilings, bulkflow and naive at one batch size, no rate limit."""
        entry: dict[str, Any] = {"batch_size": batch_size}
        labels = {"ceilings": "ceilings", "bulkflow": "bulkflow import"}
        for kind in CLIENTS:
            self.progress(f"batch size {batch_size:,}: {labels.get(kind, kind)}")
            rate_key = "post_items_per_s" if kind == "ceilings" else "items_per_s"
            runs = [
                self.measure(kind, batch_size, None, attempt)
                for attempt in range(self.plan.repeat)
            ]
            entry[kind] = best_of(runs, rate_key)
        return entry

    def rate(self, rate: float) -> dict[str, Any]:
        """bulkflow and naive against a server that allows ``rate`` calls a second."""
        size = self.plan.rate_batch_size
        entry: dict[str, Any] = {"rate": rate, "batch_size": size}
        calls = -(-self.plan.items // size)
        if calls < 2 * rate:
            self.notes.append(
                f"rate {budget_text(rate)}: {calls} calls of {size:,} items are "
                "fewer than two seconds' worth, so the budget hardly binds and a "
                "burst passes for a pace; give more --items or a smaller "
                "--rate-batch-size"
            )
        for kind in ("bulkflow", "naive"):
            self.progress(
                f"rate {budget_text(rate)}: {kind}, {calls:,} calls of {size:,} "
                f"items (about {calls / rate:.0f} s)"
            )
            runs = [
                self.measure(kind, size, rate, attempt)
                for attempt in range(self.plan.repeat)
            ]
            result = best_of(runs, "items_per_s")
            pace = result.get("calls_per_s")
            result["achieved_vs_budget"] = round(pace / rate, 3) if pace else None
            entry[kind] = result
        return entry

    def measure(
        self, kind: str, batch_size: int, rate: float | None, attempt: int
    ) -> dict[str, Any]:
        """Run one client against a fresh server; its figures and the server's."""
        budget = f"-r{budget_text(rate).replace('/', 'per')}" if rate else ""
        name = f"{kind}-b{batch_size}{budget}-a{attempt}"
        stats, report = self._file(f"{name}-server.json"), self._file(f"{name}.json")
        argv = [sys.executable, "-P", "-m", "bulkflow._bench._import_server"]
        argv += ["--code", IMPORT_CODE, "--stats", str(stats)]
        argv += ["--mode", self.plan.server_mode, "--max-seconds", "86400"]
        if rate is not None:
            argv += ["--rate-limit", budget_text(rate)]

        log = self._file(f"{name}-server.log")
        with ServerProcess(argv, log, timeout=self.plan.timeout) as server:
            client = self._client_argv(kind, server.ready["url"], batch_size, rate)
            client += ["--report", str(report)]
            if kind == "bulkflow":
                client += self._bulkflow_files(name)
            [child] = run_children(
                [client], [self._file(f"{name}.log")], timeout=self.plan.timeout
            )
        result = _flatten(kind, read_child(child, report))
        if "error" in result:
            self.failures.append(f"{name}: {result['error']}")
            return result
        if not stats.exists():
            return self._fail(result, f"{name}: the server wrote no log {stats}")

        seconds = result.get("seconds") or result.get("post_seconds")
        figures = server_figures(
            orjson.loads(stats.read_bytes()), self.expected, seconds
        )
        result["server"] = figures
        for key in ("refused", "max_calls_in_any_1s", "calls_per_s"):
            result[key] = figures[key]
        if not figures["all_items_received"]:
            received = sum(figures["items_received"].values())
            return self._fail(
                result,
                f"{name}: the server holds {received:,} of "
                f"{sum(self.expected.values()):,} items ({figures['items_received']})",
            )
        return result

    def _fail(self, result: dict[str, Any], why: str) -> dict[str, Any]:
        self.failures.append(why)
        result["error"] = why
        return result

    def _client_argv(
        self, kind: str, url: str, batch_size: int, rate: float | None
    ) -> list[str]:
        connection = ["--url", url, "--code", IMPORT_CODE, "--secret-env", SECRET_ENV]
        source = ["--from", str(self.plan.items_file)]
        size = ["--batch-size", str(batch_size)]
        if kind != "bulkflow":
            argv = [sys.executable, "-P", "-m", "bulkflow._bench._import_clients", kind]
            argv += connection + source + size
            if kind == "ceilings":
                argv += ["--concurrency", str(self.plan.concurrency)]
            return argv
        argv = [
            sys.executable,
            "-P",
            "-m",
            EXPORT_MODULE,
            "import",
            *connection,
            *source,
        ]
        argv += size + ["--direct", "--concurrency", str(self.plan.concurrency)]
        return argv + ["--rate", budget_text(rate) if rate else "none"]

    def _bulkflow_files(self, name: str) -> list[str]:
        ledger = self._file(f"{name}.ledger.sqlite")
        rejects = self._file(f"{name}.rejects.jsonl")
        return ["--ledger", str(ledger), "--rejects", str(rejects)]

    def _file(self, name: str) -> Path:
        path = self.plan.work_dir / name
        path.unlink(missing_ok=True)
        return path


def _flatten(kind: str, result: dict[str, Any]) -> dict[str, Any]:
    """bulkflow's report with its counts on top, named as the naive client's."""
    if kind != "bulkflow" or "error" in result:
        return result
    batches, items = result.pop("batches"), result.pop("items")
    for key in ("connector", "source", "url", "rejects", "ledger"):
        result.pop(key, None)
    result.update(
        items=items["sent"],
        batches=batches["sent"],
        batches_accepted=batches["accepted"],
        items_rejected=items["rejected"],
        client_max_requests_in_any_1s=result.pop("max_requests_in_any_1s_window"),
    )
    return result


def run_import_plan(
    plan: ImportPlan, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Measure every scenario of ``plan``; return the results, failures included."""
    plan.work_dir.mkdir(parents=True, exist_ok=True)
    load = [round(value, 2) for value in os.getloadavg()]
    bench = ImportBench(plan, progress)
    bench.prepare()
    sweep = [bench.throughput(size) for size in plan.batch_sizes]
    rates = [bench.rate(rate) for rate in plan.rates]
    return {
        "load_average_start": load,
        "items_per_table": bench.expected,
        "items_file_bytes": plan.items_file.stat().st_size,
        "sweep": sweep,
        "rates": rates,
        "notes": bench.notes,
        "failures": bench.failures,
    }
