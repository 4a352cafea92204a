"""Measured child processes: started, given a deadline, reaped with their peak RSS.

A measured command does not run as a direct child of the harness. Linux
carries a process's memory high-water mark across ``exec``: a child
started by ``fork`` or ``vfork`` from the harness inherits, in its
``ru_maxrss``, the harness's own resident set at that moment (measured:
``python -c pass`` started from a harness holding 342 MiB reported 342
MiB, against a ``VmHWM`` of 11 MiB). So each command is started by a small
reaper, ``python -I -S -c REAPER`` (about 9 MiB), which starts the command
with ``posix_spawn``, waits for it with ``os.wait4`` and writes that
child's exit code and ``ru_maxrss`` to a file: the command's own peak
(``VmHWM``), with no more than the reaper's 9 MiB as a floor. At the
deadline the harness sends the reaper SIGTERM, on which the reaper kills
the command by its PID and reaps it; a reaper that does not end within
``STOP_SECONDS`` is killed.
"""

from __future__ import annotations

import os
import selectors
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from bulkflow.emulator import DEMO_SECRET

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

#: The environment variable through which children get the connector's secret.
SECRET_ENV = "BULKFLOW_BENCH_SECRET"

#: Seconds between two looks at running children.
POLL_SECONDS = 0.01

#: Seconds a reaper has to end after SIGTERM before it is killed.
STOP_SECONDS = 5.0

#: The reaper: ``python -I -S -c REAPER PEAK_FILE COMMAND...``. It imports
#: nothing but ``os``, ``signal`` and ``sys``, to stay small.
REAPER = """
import os, signal, sys
peak_file, argv = sys.argv[1], sys.argv[2:]
child = []
def stop(signum, frame):
    if child:
        os.kill(child[0], signal.SIGKILL)
    else:
        sys.exit(143)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, signal.SIG_IGN)
defaults = (signal.SIGINT, signal.SIGTERM)
child.append(os.posix_spawnp(argv[0], argv, os.environ, setsigdef=defaults))
_, status, usage = os.wait4(child[0], 0)
code = os.waitstatus_to_exitcode(status)
with open(peak_file, "w") as out:
    out.write(f"{code} {usage.ru_maxrss}")
sys.exit(code if code >= 0 else 128 - code)
"""


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


def _peak_file(log: Path) -> Path:
    return log.with_name(log.name + ".peak")


def run_children(
    commands: Sequence[list[str]], logs: Sequence[Path], *, timeout: float
) -> list[ChildResult]:
    """Start ``commands`` together; reap each, stopping any past ``timeout`` seconds.

    Each command's output goes to its log; its peak RSS is its own (see the
    module's docstring).
    """
    started = time.perf_counter()
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[int, ChildResult] = {}
    try:
        for argv, log in zip(commands, logs, strict=True):
            _peak_file(log).unlink(missing_ok=True)
            reaper = [sys.executable, "-I", "-S", "-c", REAPER, str(_peak_file(log))]
            with log.open("wb") as sink:
                procs.append(
                    subprocess.Popen(
                        reaper + argv, env=child_env(), stdout=sink, stderr=sink
                    )
                )

        # Poll rather than block: several children may run, each with a deadline.
        while len(results) < len(procs):
            late = time.perf_counter() > started + timeout
            for index, proc in enumerate(procs):
                log = logs[index]
                reaped = None if index in results else _reap(proc, log, stop=late)
                if reaped is not None:
                    wall = time.perf_counter() - started
                    status, rss = reaped
                    argv = commands[index]
                    results[index] = ChildResult(argv, status, rss, wall, log, late)
            time.sleep(POLL_SECONDS)
    except BaseException:
        # Interrupted or unable to start them all: no child may outlive the harness.
        for index, proc in enumerate(procs):
            if index not in results:
                _reap(proc, logs[index], stop=True)
        raise
    return [results[index] for index in range(len(procs))]


def _reap(
    proc: subprocess.Popen[bytes], log: Path, *, stop: bool
) -> tuple[int, float] | None:
    """Return (exit code, peak RSS in MiB) once ``proc`` has ended, else ``None``.

    With ``stop``, the reaper is asked to end its command first, and killed
    if it does not. The figures are those the reaper wrote; without them
    (a reaper killed), the reaper's own, whose peak RSS is the harness's
    at the start or more: an upper bound.
    """
    if stop:
        proc.terminate()
        deadline = time.perf_counter() + STOP_SECONDS
        while proc.poll() is None and time.perf_counter() < deadline:
            time.sleep(POLL_SECONDS)
        if proc.returncode is None:
            proc.kill()
    if proc.returncode is None:
        pid, status, usage = os.wait4(proc.pid, 0 if stop else os.WNOHANG)
        if pid == 0:
            return None
        # Popen must know the child is gone, or it would wait for it again.
        proc.returncode = os.waitstatus_to_exitcode(status)
        code, peak = proc.returncode, usage.ru_maxrss
    else:
        # Reaped by poll() above, whose usage figures are not kept.
        code, peak = proc.returncode, 0
    written = _peak_file(log)
    try:
        code_text, peak_text = written.read_text().split()
        code, peak = int(code_text), int(peak_text)
        written.unlink()
    except (OSError, ValueError):
        pass
    return code, peak / 1024


class ServerProcess:
    """A bench server as a child process, for the duration of a ``with``.

    The server prints one JSON line (its URL first of all) once it serves,
    and stops when its standard input closes.

    Args:
        argv: the server's command line.
        log: where its standard error goes.
        timeout: seconds to wait for the ready line.
        hint: said when the server is not ready in time.
    """

    def __init__(
        self, argv: list[str], log: Path, *, timeout: float, hint: str = ""
    ) -> None:
        self.argv = argv
        self.log = log
        self.timeout = timeout
        self.hint = hint
        self.ready: dict[str, Any] = {}
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log
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
            if not selector.select(self.timeout):
                raise RuntimeError(
                    f"the bench server was not ready within {self.timeout:g} s "
                    f"(--timeout){self.hint}"
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


def read_child(child: ChildResult, report: Path) -> dict[str, Any]:
    """The child's JSON report with its peak RSS; with ``error`` if it failed."""
    failure = child.failure()
    if failure is None and not report.exists():
        failure = f"{shlex.join(child.argv[1:4])} wrote no report {report}"
    result: dict[str, Any] = {
        "peak_rss_mib": round(child.peak_rss_mib, 1),
        "wall_seconds": round(child.wall_seconds, 3),
        "command": shlex.join(child.argv),
    }
    if failure is not None:
        result["error"] = failure
        return result
    result.update(orjson.loads(report.read_bytes()))
    return result


def best_of(runs: list[dict[str, Any]], rate: str) -> dict[str, Any]:
    """The fastest of ``runs`` by ``rate``, each rate at its best, RSS at its most.

    A client's figures come from its fastest run; for a ceiling ladder each
    rung (every ``*_per_s`` figure) keeps its own best. Peak RSS is the
    largest of all runs. When every run failed, the last one is returned.
    """
    good = [run for run in runs if "error" not in run]
    if not good:
        return runs[-1]
    fastest: dict[str, Any] = max(good, key=lambda run: float(run.get(rate) or 0.0))
    best = dict(fastest)
    for key, value in best.items():
        if key.endswith("_per_s") and isinstance(value, int | float):
            best[key] = max(float(run[key]) for run in good)
    best["peak_rss_mib"] = max(float(run["peak_rss_mib"]) for run in good)
    best["runs"] = len(runs)
    return best
