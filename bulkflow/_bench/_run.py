"""Run a benchmark plan: the replay server, then ceilings, bulkflow and baselines.

Everything measured runs in a child process of its own, one kind at a time,
so that the harness never competes with what it measures and each client's
peak memory is its own (``_children`` says how it is read). Every child has
a deadline; one that passes it is killed and reported as failed, and the
run goes on. A client that ends well but has not delivered every row of
the feed is reported as failed too.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkflow._bench._children import (
    SECRET_ENV,
    ServerProcess,
    best_of,
    read_child,
    run_children,
)
from bulkflow._bench._report import combine, count_rows
from bulkflow.emulator import DEMO_CODE

if TYPE_CHECKING:
    from collections.abc import Callable

    from bulkflow._bench._children import ChildResult

#: bulkflow is measured as ``python -m EXPORT_MODULE export --url ... --report
#: FILE``: the real command line, with the options a user would give it.
EXPORT_MODULE = "bulkflow"

#: The dlt baselines are measured as ``python -m DLT_MODULE DESTINATION ...``.
DLT_MODULE = "bulkflow._bench._dlt"


@dataclass(frozen=True)
class Plan:
    """What one ``bench export`` measures.

    Attributes:
        rows: items in the synthetic catalog, the rows of every run.
        page_sizes: the page sizes measured, one after the other.
        headline: the page size the top-level numbers of the report are for.
        connectors: concurrent exports of the same feed, each into its own file.
        seed: the synthetic catalog's seed.
        repeat: runs of each measurement; the fastest counts.
        timeout: seconds any one child process may take.
        work_dir: where databases, reports and logs go.
        keep: keep the databases after their rows are counted.
        dlt: the destinations of the dlt baselines to run (``duckdb``,
            ``parquet``); none when dlt is not installed or not wanted.
    """

    rows: int
    page_sizes: tuple[int, ...]
    headline: int
    connectors: int = 1
    seed: int = 0
    repeat: int = 1
    timeout: float = 1800.0
    work_dir: Path = Path("bench-work")
    keep: bool = False
    dlt: tuple[str, ...] = ()


def replay_argv(plan: Plan) -> list[str]:
    """The command line of the replay server for ``plan``."""
    sizes = ",".join(str(size) for size in plan.page_sizes)
    argv = [sys.executable, "-P", "-m", "bulkflow._bench._server"]
    argv += ["--rows", str(plan.rows), "--page-sizes", sizes]
    return argv + ["--seed", str(plan.seed), "--max-seconds", "86400"]


class Bench:
    """Measure a plan against a running replay server."""

    def __init__(
        self, plan: Plan, server: ServerProcess, progress: Callable[[str], None]
    ) -> None:
        self.plan = plan
        self.server = server
        self.progress = progress
        self.failures: list[str] = []

    def page_size(self, page_size: int) -> dict[str, Any]:
        """Everything measured at one page size."""
        entry: dict[str, Any] = {"page_size": page_size}
        self.progress(f"page size {page_size:,}: ceiling ladder")
        entry["ceilings"] = self._best(partial(self.ceilings, page_size))
        kinds = [("bulkflow", "bulkflow export"), ("naive", "naive")]
        kinds += [(f"dlt-{name}", f"dlt into {name}") for name in self.plan.dlt]
        for kind, label in kinds:
            self.progress(f"page size {page_size:,}: {label}")
            key = kind.replace("-", "_")
            entry[key] = self._best(partial(self.clients, kind, page_size))
        return entry

    def _best(self, measure: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
        """Run ``measure`` ``repeat`` times; keep the fastest of each rate.

        A client's figures come from its fastest run; for the ceiling ladder
        each rung keeps its own best. Peak RSS is the largest of all runs.
        """
        runs = [measure(attempt) for attempt in range(self.plan.repeat)]
        return best_of(runs, "rows_per_s")

    def ceilings(self, page_size: int, attempt: int) -> dict[str, Any]:
        """Climb the ceiling ladder once in a child process."""
        name = f"ceilings-p{page_size}-r{attempt}"
        db, report = self._files(name)
        argv = [sys.executable, "-P", "-m", "bulkflow._bench._ceilings"]
        argv += self._connection(page_size)
        argv += ["--db", str(db), "--report", str(report)]
        [child] = run_children([argv], [self._log(name)], timeout=self.plan.timeout)
        result = self._read(child, report)
        result["rows_in_db"] = self._count(db)
        return result

    def clients(self, kind: str, page_size: int, attempt: int) -> dict[str, Any]:
        """Run ``connectors`` copies of one client side by side; sum them up."""
        names = [
            f"{kind}-p{page_size}-r{attempt}-c{index}"
            for index in range(self.plan.connectors)
        ]
        files = [self._files(name) for name in names]
        commands = [self._client_argv(kind, page_size, *pair) for pair in files]
        logs = [self._log(name) for name in names]

        children = run_children(commands, logs, timeout=self.plan.timeout)
        results = []
        for child, (db, report) in zip(children, files, strict=True):
            result = self._read(child, report)
            if kind.startswith("dlt-"):
                result["rows_in_db"] = self._loaded(db, result)
            else:
                result["rows_in_db"] = self._count(db)
            results.append(result)
        combined = combine(results, expected=int(self.server.ready["rows"]))
        self._check_rows(kind, combined)
        return combined

    def _check_rows(self, kind: str, result: dict[str, Any]) -> None:
        """Report a client that ran but did not deliver every row of the feed."""
        if "error" in result or result["rows_in_db"] == result["rows_expected"]:
            return
        found, expected = result["rows_in_db"], result["rows_expected"]
        failure = f"{kind}: {found:,} rows arrived of the feed's {expected:,}"
        self.failures.append(failure)
        result["error"] = failure

    def _client_argv(
        self, kind: str, page_size: int, db: Path, report: Path
    ) -> list[str]:
        connection = self._connection(page_size)
        if kind.startswith("dlt-"):
            # A dlt baseline writes a folder: its pipeline, DuckDB or Parquet.
            destination = kind.removeprefix("dlt-")
            argv = [sys.executable, "-P", "-m", DLT_MODULE, destination, *connection]
            return argv + ["--into", str(db), "--report", str(report)]
        module = EXPORT_MODULE if kind == "bulkflow" else "bulkflow._bench._baselines"
        client = "export" if kind == "bulkflow" else kind
        argv = [sys.executable, "-P", "-m", module, client, *connection]
        return argv + ["--into", f"sqlite:///{db}", "--report", str(report)]

    def _connection(self, page_size: int) -> list[str]:
        return [
            "--url",
            self.server.url,
            "--code",
            DEMO_CODE,
            "--secret-env",
            SECRET_ENV,
            "--page-size",
            str(page_size),
        ]

    def _files(self, name: str) -> tuple[Path, Path]:
        if name.startswith("dlt-"):
            folder = self.plan.work_dir / name
            shutil.rmtree(folder, ignore_errors=True)
            return folder, self.plan.work_dir / f"{name}.json"
        db = self.plan.work_dir / f"{name}.sqlite"
        for stale in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            stale.unlink(missing_ok=True)
        return db, self.plan.work_dir / f"{name}.json"

    def _log(self, name: str) -> Path:
        return self.plan.work_dir / f"{name}.log"

    def _read(self, child: ChildResult, report: Path) -> dict[str, Any]:
        """The child's JSON report with its peak RSS, or the reason it failed."""
        result = read_child(child, report)
        if "error" in result:
            self.failures.append(str(result["error"]))
        return result

    def _count(self, db: Path) -> int:
        """Rows in the feed's tables of ``db``; then remove it unless kept."""
        rows = count_rows(db) if db.exists() else 0
        if not self.plan.keep:
            for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
                path.unlink(missing_ok=True)
        return rows

    def _loaded(self, folder: Path, result: dict[str, Any]) -> int:
        """Rows a dlt baseline found in its destination; then remove its folder.

        The client counts them itself after the load, in the DuckDB file or
        the Parquet files, so that the harness needs neither DuckDB nor
        pyarrow.
        """
        if not self.plan.keep:
            shutil.rmtree(folder, ignore_errors=True)
        return int(result.get("rows") or 0)


def run_plan(plan: Plan, progress: Callable[[str], None]) -> dict[str, Any]:
    """Measure every page size of ``plan``; return the results, failures included."""
    plan.work_dir.mkdir(parents=True, exist_ok=True)
    load = [round(value, 2) for value in os.getloadavg()]
    progress(f"rendering {plan.rows:,} rows at page sizes {list(plan.page_sizes)}")
    log = plan.work_dir / "server.log"
    hint = "; it renders every page first"
    with ServerProcess(
        replay_argv(plan), log, timeout=plan.timeout, hint=hint
    ) as server:
        bench = Bench(plan, server, progress)
        sweep = [bench.page_size(size) for size in plan.page_sizes]
    ready = {key: value for key, value in server.ready.items() if key != "url"}
    return {
        "load_average_start": load,
        "server": ready,
        "sweep": sweep,
        "failures": bench.failures,
    }
