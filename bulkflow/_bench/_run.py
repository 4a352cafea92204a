"""Run a benchmark plan: the replay server, then ceilings, bulkflow and baselines.

Everything measured runs in a child process of its own, one kind at a time,
so that the harness never competes with what it measures and each client's
peak memory is its own: the harness reaps every child with ``os.wait4``,
whose ``ru_maxrss`` is that child's high-water resident set (``VmHWM``).
Every child has a deadline; one that passes it is killed by its PID and
reported as failed, and the run goes on. A client that ends well but has
not delivered every row of the feed is reported as failed too.

Over 400 lines: starting, reaping and timing children, the replay server's
lifetime and the plan's sequence of measurements share one plan and one list
of failures.
"""

from __future__ import annotations

import os
import selectors
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from bulkflow._bench._report import combine, count_rows
from bulkflow.emulator import DEMO_CODE, DEMO_SECRET

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType

#: bulkflow is measured as ``python -m EXPORT_MODULE export --url ... --report
#: FILE``: the real command line, with the options a user would give it.
EXPORT_MODULE = "bulkflow"

#: The environment variable through which children get the connector's secret.
SECRET_ENV = "BULKFLOW_BENCH_SECRET"

#: Seconds between two looks at running children.
POLL_SECONDS = 0.01

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


@dataclass
class ChildResult:
    """How one child process ended."""

    argv: list[str]
    returncode: int
    peak_rss_mib: float
    wall_seconds: float
    log: Path
    timed_out: bool = False

    def failure(self) -> str | None:
        """Why the child failed, with the end of its log; ``None`` if it did not."""
        if self.returncode == 0 and not self.timed_out:
            return None
        why = "timed out" if self.timed_out else f"exited with {self.returncode}"
        tail = _tail(self.log)
        return f"{shlex.join(self.argv[1:4])} {why}: {tail}"


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"


def child_env() -> dict[str, str]:
    """The environment of every child: this one plus the connector's secret."""
    return {**os.environ, SECRET_ENV: DEMO_SECRET}


def run_children(
    commands: Sequence[list[str]], logs: Sequence[Path], *, timeout: float
) -> list[ChildResult]:
    """Start ``commands`` together; reap each, killing any past ``timeout`` seconds."""
    started = time.perf_counter()
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[int, ChildResult] = {}
    try:
        for argv, log in zip(commands, logs, strict=True):
            with log.open("wb") as sink:
                procs.append(
                    subprocess.Popen(argv, env=child_env(), stdout=sink, stderr=sink)
                )

        # Poll rather than block: several children may run, each with a deadline.
        while len(results) < len(procs):
            late = time.perf_counter() > started + timeout
            for index, proc in enumerate(procs):
                reaped = None if index in results else _reap(proc, kill=late)
                if reaped is not None:
                    wall = time.perf_counter() - started
                    status, rss = reaped
                    argv, log = commands[index], logs[index]
                    results[index] = ChildResult(argv, status, rss, wall, log, late)
            time.sleep(POLL_SECONDS)
    except BaseException:
        # Interrupted or unable to start them all: no child may outlive the harness.
        for index, proc in enumerate(procs):
            if index not in results:
                _reap(proc, kill=True)
        raise
    return [results[index] for index in range(len(procs))]


def _reap(proc: subprocess.Popen[bytes], *, kill: bool) -> tuple[int, float] | None:
    """Return (exit code, peak RSS in MiB) once ``proc`` has ended, else ``None``.

    ``os.wait4`` gives the resources of that one child, unlike
    ``RUSAGE_CHILDREN``, which is the maximum over every child reaped so far.
    """
    if kill:
        proc.kill()
    pid, status, usage = os.wait4(proc.pid, 0 if kill else os.WNOHANG)
    if pid == 0:
        return None
    # Popen must know the child is gone, or it would wait for it again.
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024


class ServerProcess:
    """The replay server as a child process, for the duration of a ``with``."""

    def __init__(self, plan: Plan, log: Path) -> None:
        self.plan = plan
        self.log = log
        self.ready: dict[str, Any] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        sizes = ",".join(str(size) for size in self.plan.page_sizes)
        argv = [sys.executable, "-m", "bulkflow._bench._server"]
        argv += ["--rows", str(self.plan.rows), "--page-sizes", sizes]
        argv += ["--seed", str(self.plan.seed), "--max-seconds", "86400"]
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log
            )
        try:
            self.ready = self._read_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The server's URL."""
        return str(self.ready["url"])

    def _read_ready(self) -> dict[str, Any]:
        """Wait for the server's ready line; raise if it dies or takes too long."""
        assert self._proc is not None and self._proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._proc.stdout, selectors.EVENT_READ)
            if not selector.select(self.plan.timeout):
                raise RuntimeError(
                    f"the bench server was not ready within {self.plan.timeout:g} s "
                    "(--timeout); it renders every page first"
                )
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the bench server failed: {_tail(self.log)}")
        ready: dict[str, Any] = orjson.loads(line)
        return ready

    def stop(self) -> None:
        """Close the server's input (it stops), then make sure it has ended."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


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
        good = [run for run in runs if "error" not in run]
        if not good:
            return runs[-1]
        fastest: dict[str, Any] = max(good, key=_rows_per_s)
        best = dict(fastest)
        for key, value in best.items():
            if key.endswith("_per_s") and isinstance(value, int | float):
                best[key] = max(float(run[key]) for run in good)
        best["peak_rss_mib"] = max(float(run["peak_rss_mib"]) for run in good)
        best["runs"] = len(runs)
        return best

    def ceilings(self, page_size: int, attempt: int) -> dict[str, Any]:
        """Climb the ceiling ladder once in a child process."""
        name = f"ceilings-p{page_size}-r{attempt}"
        db, report = self._files(name)
        argv = [sys.executable, "-m", "bulkflow._bench._ceilings"]
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
            argv = [sys.executable, "-m", DLT_MODULE, destination, *connection]
            return argv + ["--into", str(db), "--report", str(report)]
        module = EXPORT_MODULE if kind == "bulkflow" else "bulkflow._bench._baselines"
        client = "export" if kind == "bulkflow" else kind
        argv = [sys.executable, "-m", module, client, *connection]
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
        failure = child.failure()
        if failure is None and not report.exists():
            failure = f"{shlex.join(child.argv[1:4])} wrote no report {report}"
        result: dict[str, Any] = {
            "peak_rss_mib": round(child.peak_rss_mib, 1),
            "wall_seconds": round(child.wall_seconds, 3),
            "command": shlex.join(child.argv),
        }
        if failure is not None:
            self.failures.append(failure)
            result["error"] = failure
            return result
        result.update(orjson.loads(report.read_bytes()))
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


def _rows_per_s(run: dict[str, Any]) -> float:
    return float(run.get("rows_per_s") or 0.0)


def run_plan(plan: Plan, progress: Callable[[str], None]) -> dict[str, Any]:
    """Measure every page size of ``plan``; return the results, failures included."""
    plan.work_dir.mkdir(parents=True, exist_ok=True)
    load = [round(value, 2) for value in os.getloadavg()]
    progress(f"rendering {plan.rows:,} rows at page sizes {list(plan.page_sizes)}")
    with ServerProcess(plan, plan.work_dir / "server.log") as server:
        bench = Bench(plan, server, progress)
        sweep = [bench.page_size(size) for size in plan.page_sizes]
    ready = {key: value for key, value in server.ready.items() if key != "url"}
    return {
        "load_average_start": load,
        "server": ready,
        "sweep": sweep,
        "failures": bench.failures,
    }
