"""Run a benchmark plan: the replay server, then ceilings, bulkflow and baselines.

Everything measured runs in a child process of its own, one kind at a time,
so that the harness never competes with what it measures and each client's
peak memory is its own: the harness reaps every child with ``os.wait4``,
whose ``ru_maxrss`` is that child's high-water resident set (``VmHWM``).
Every child has a deadline; one that passes it is killed by its PID and
reported as failed, and the run goes on.
"""

from __future__ import annotations

import os
import platform
import selectors
import shlex
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from bulkflow.emulator import DEMO_CODE, DEMO_SECRET

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType

#: The module run as ``python -m MODULE export ...`` to measure bulkflow. The
#: stand-in takes the same options as ``bulkflow export``; set this to
#: ``"bulkflow"`` to measure the real command line instead.
EXPORT_MODULE = "bulkflow._bench._baselines"

#: The environment variable through which children get the connector's secret.
SECRET_ENV = "BULKFLOW_BENCH_SECRET"

#: Seconds between two looks at running children.
POLL_SECONDS = 0.01


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
    deadline = started + timeout
    procs = []
    for argv, log in zip(commands, logs, strict=True):
        with log.open("wb") as sink:
            procs.append(
                subprocess.Popen(argv, env=child_env(), stdout=sink, stderr=sink)
            )
    results: dict[int, ChildResult] = {}
    while len(results) < len(procs):
        for index, proc in enumerate(procs):
            if index not in results:
                late = time.perf_counter() > deadline
                reaped = _reap(proc, kill=late)
                if reaped is not None:
                    status, rss = reaped
                    wall = time.perf_counter() - started
                    results[index] = ChildResult(
                        commands[index], status, rss, wall, logs[index], late
                    )
        time.sleep(POLL_SECONDS)
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
        say = self.progress
        say(f"page size {page_size:,}: ceiling ladder")
        ceilings = self._best(lambda attempt: self.ceilings(page_size, attempt))
        say(f"page size {page_size:,}: bulkflow export")
        bulkflow = self._best(
            lambda attempt: self.clients("bulkflow", page_size, attempt)
        )
        say(f"page size {page_size:,}: naive baseline")
        naive = self._best(lambda attempt: self.clients("naive", page_size, attempt))
        return {
            "page_size": page_size,
            "ceilings": ceilings,
            "bulkflow": bulkflow,
            "naive": naive,
        }

    def _best(self, measure: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
        """Run ``measure`` ``repeat`` times; keep the fastest, with the top RSS."""
        runs = [measure(attempt) for attempt in range(self.plan.repeat)]
        good = [run for run in runs if "error" not in run]
        if not good:
            return runs[-1]
        best = max(good, key=lambda run: float(run.get("rows_per_s") or 0.0))
        peaks = [float(run["peak_rss_mib"]) for run in good if "peak_rss_mib" in run]
        if peaks:
            best["peak_rss_mib"] = max(peaks)
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
        commands, files = [], []
        for name in names:
            db, report = self._files(name)
            commands.append(self._client_argv(kind, page_size, db, report))
            files.append((db, report))
        logs = [self._log(name) for name in names]
        children = run_children(commands, logs, timeout=self.plan.timeout)
        results = [self._read(c, r) for c, (_, r) in zip(children, files, strict=True)]
        for result, (db, _) in zip(results, files, strict=True):
            result["rows_in_db"] = self._count(db)
        return combine(results, expected=int(self.server.ready["rows"]))

    def _client_argv(
        self, kind: str, page_size: int, db: Path, report: Path
    ) -> list[str]:
        module = EXPORT_MODULE if kind == "bulkflow" else "bulkflow._bench._baselines"
        client = "export" if kind == "bulkflow" else kind
        argv = [sys.executable, "-m", module, client, *self._connection(page_size)]
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


def count_rows(db: Path) -> int:
    """Rows of every table in ``db`` but bulkflow's and SQLite's own."""
    connection = sqlite3.connect(db)
    try:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type='table'"
            )
            if not str(row[0]).startswith(("_bulkflow", "sqlite_"))
        ]
        total = 0
        for name in names:
            quoted = '"' + name.replace('"', '""') + '"'
            total += connection.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]
        return int(total)
    finally:
        connection.close()


def combine(results: list[dict[str, Any]], *, expected: int) -> dict[str, Any]:
    """One figure for side-by-side clients: rows over the slowest one's seconds.

    Peak RSS is the largest of one process; ``peak_rss_sum_mib`` adds the
    processes' peaks, an upper bound of what they held at once.
    """
    if len(results) == 1:
        combined = dict(results[0])
    else:
        combined = {"clients": results}
        errors = [str(result["error"]) for result in results if "error" in result]
        if errors:
            combined["error"] = errors[0]
        else:
            rows = sum(int(result["rows"]) for result in results)
            seconds = max(float(result["seconds"]) for result in results)
            combined["rows"] = rows
            combined["seconds"] = seconds
            combined["rows_per_s"] = round(rows / seconds, 1) if seconds else 0.0
        peaks = [float(result["peak_rss_mib"]) for result in results]
        combined["peak_rss_mib"] = max(peaks)
        combined["peak_rss_sum_mib"] = round(sum(peaks), 1)
        combined["command"] = results[0]["command"]
        combined["rows_in_db"] = sum(int(r["rows_in_db"]) for r in results)
    combined["rows_expected"] = expected * len(results)
    return combined


def machine() -> dict[str, Any]:
    """The machine, interpreter and library versions the numbers belong to."""
    from bulkflow._bench._ceilings import ijson_backend

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_mib": _memory_mib(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "ijson_backend": getattr(ijson_backend(), "backend", "python"),
        "sqlite": sqlite3.sqlite_version,
        "versions": {name: _version(name) for name in _PACKAGES},
    }


_PACKAGES = ("bulkflow", "aiohttp", "anyio", "ijson", "orjson")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_mib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def run_plan(plan: Plan, progress: Callable[[str], None]) -> dict[str, Any]:
    """Measure every page size of ``plan``; return the results, failures included."""
    plan.work_dir.mkdir(parents=True, exist_ok=True)
    progress(f"rendering {plan.rows:,} rows at page sizes {list(plan.page_sizes)}")
    with ServerProcess(plan, plan.work_dir / "server.log") as server:
        bench = Bench(plan, server, progress)
        sweep = [bench.page_size(size) for size in plan.page_sizes]
    ready = {key: value for key, value in server.ready.items() if key != "url"}
    return {
        "machine": machine(),
        "server": ready,
        "sweep": sweep,
        "failures": bench.failures,
    }
