"""The differential check of incremental sync: churn, export, kill, compare.

A seeded sequence of catalog changes and incremental exports, some of them
killed with SIGKILL at a random moment, must end with a replica equal, table
by table and value by value, to a fresh full export of the same catalog. The
emulator and every export run in their own processes, as they would in
production; the catalog is changed in this process through the emulator's
store (SQLite in WAL mode), also while an export is running.

Over 400 lines: the processes, the kills and the comparison of one check.
"""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bulkflow.emulator import DEMO_CODE, DEMO_SECRET, CatalogStore, catalog_source
from bulkflow.emulator._churn import churn, show_all

#: The second connector of a two-connector run: a channel of a few categories.
CHANNEL_CODE = "CN_BULKFLOW_CHANNEL"

_SECRET_VAR = "BULKFLOW_DIFFERENTIAL_SECRET"


@dataclass
class TableDiff:
    """How a replica table differs from the fresh export's."""

    lost: list[Any] = field(default_factory=list)
    extra: list[Any] = field(default_factory=list)
    differing: list[Any] = field(default_factory=list)


@dataclass
class DifferentialResult:
    """What a differential run did and found."""

    rounds: int = 0
    runs: int = 0
    kills: int = 0
    resumed_runs: int = 0
    pages_skipped: int = 0
    restarted_runs: int = 0
    churned_during_runs: int = 0
    rows_compared: int = 0
    tables: dict[str, TableDiff] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        """Rows the fresh export has and the replica lacks."""
        return sum(len(diff.lost) for diff in self.tables.values())

    @property
    def extra(self) -> int:
        """Rows the replica kept although they should be gone (or twice)."""
        return sum(len(diff.extra) for diff in self.tables.values())

    @property
    def differing(self) -> int:
        """Rows present in both whose values differ."""
        return sum(len(diff.differing) for diff in self.tables.values())

    @property
    def exact(self) -> bool:
        """True when the replica equals the fresh export."""
        return self.lost == self.extra == self.differing == 0

    def summary(self) -> str:
        """One line for logs and closing notes."""
        return (
            f"{self.rounds} rounds, {self.runs} export runs, {self.kills} killed "
            f"(SIGKILL), {self.resumed_runs} resumed ({self.pages_skipped} pages "
            f"skipped), {self.restarted_runs} restarted after a refused token, "
            f"{self.churned_during_runs} churns during a run; "
            f"{self.rows_compared} rows compared: {self.lost} lost, "
            f"{self.extra} duplicated or not deleted, {self.differing} differing"
        )


@dataclass(frozen=True)
class DifferentialPlan:
    """The knobs of a differential run (all randomness comes from ``seed``)."""

    catalog: str = "synthetic:300"
    seed: int = 1
    rounds: int = 10
    kill_probability: float = 0.4
    churn_during_run_probability: float = 0.3
    page_size: int = 7
    update: float = 0.05
    delete: float = 0.02
    hide: float = 0.02
    add: float = 0.03
    two_connectors: bool = True
    token_ttl: int = 1800
    pause_before_resume: float = 0.0
    max_kill_delay: float = 1.5
    #: ``--whole-page-limit`` of the exports; ``None`` keeps the default.
    whole_page_limit: int | None = None
    #: After the first comparison, show every hidden item, sync and compare again.
    show_all_at_end: bool = True


def run_differential(workdir: Path, plan: DifferentialPlan) -> DifferentialResult:
    """Run ``plan`` in ``workdir`` and compare the replica with a fresh export."""
    rng = random.Random(plan.seed)
    result = DifferentialResult()
    store_dir = workdir / "emulator"
    store = CatalogStore.open(store_dir)
    store.load(catalog_source(plan.catalog, seed=plan.seed))
    codes = [DEMO_CODE]
    store.put_connector(DEMO_CODE, DEMO_SECRET, kind="export", options={})
    if plan.two_connectors:
        roots = _channel_roots(store, rng)
        store.put_connector(
            CHANNEL_CODE, DEMO_SECRET, kind="export", options={"categories": roots}
        )
        codes.append(CHANNEL_CODE)
    replica = workdir / "replica.sqlite"
    try:
        with _emulator(store_dir, plan) as url:
            for _ in range(plan.rounds):
                _churn(store, rng, plan)
                for code in codes:
                    _one_run(url, code, replica, workdir, plan, rng, store, result)
                result.rounds += 1
            for code in codes:
                _finish(url, code, replica, workdir, plan, result)
            _compare(replica, _fresh(url, codes, workdir, plan, "fresh"), result)
            if plan.show_all_at_end and show_all(store):
                # Hidden categories may have emptied the catalog: show every
                # item again, sync once more, and compare that too (the
                # items come back as upserts of an update).
                for code in codes:
                    _export(url, code, replica, workdir, plan, check=True)
                    result.runs += 1
                shown = _fresh(url, codes, workdir, plan, "fresh-shown")
                _compare(replica, shown, result, label=" (all shown)")
    finally:
        store.close()
    return result


def _fresh(
    url: str, codes: list[str], workdir: Path, plan: DifferentialPlan, name: str
) -> Path:
    """A full export of every connector into a new file: what the replica should be."""
    fresh = workdir / f"{name}.sqlite"
    for code in codes:
        _export(url, code, fresh, workdir, plan, check=True)
    return fresh


def _churn(store: CatalogStore, rng: random.Random, plan: DifferentialPlan) -> None:
    churn(
        store,
        seed=rng.randrange(2**31),
        update=plan.update,
        delete=plan.delete,
        hide=plan.hide,
        add=plan.add,
    )


def _channel_roots(store: CatalogStore, rng: random.Random) -> list[int]:
    """A few top-level categories: the second connector's channel."""
    tables = store.get_meta("tables") or []
    tree = store.tree(tables[0]) if tables else {}
    tops = sorted(id_ for id_, (parents, _, _) in tree.items() if not parents)
    return rng.sample(tops, max(1, len(tops) // 2)) if tops else []


def _one_run(
    url: str,
    code: str,
    replica: Path,
    workdir: Path,
    plan: DifferentialPlan,
    rng: random.Random,
    store: CatalogStore,
    result: DifferentialResult,
) -> None:
    """One export run, perhaps killed, perhaps with a churn while it runs."""
    process = _start_export(url, code, replica, workdir, plan)
    result.runs += 1
    if rng.random() < plan.churn_during_run_probability:
        time.sleep(rng.uniform(0.0, plan.max_kill_delay / 2))
        _churn(store, rng, plan)
        result.churned_during_runs += 1
    if rng.random() < plan.kill_probability:
        # Half the kills land at a random moment (often before any commit),
        # half once the run has committed a few pages: mid-run for sure.
        if rng.random() < 0.5:
            time.sleep(rng.uniform(0.0, plan.max_kill_delay))
        else:
            _wait_for_pages(replica, code, rng.randint(1, 4), process)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            result.kills += 1
            with (workdir / "runs.jsonl").open("a") as log:
                log.write(f'{{"killed": "{code}", "at": {time.time():.3f}}}\n')
        process.communicate()
        time.sleep(plan.pause_before_resume)
        return
    _wait(process, code)
    _account(workdir, code, result)


def _wait_for_pages(
    replica: Path, code: str, pages: int, process: subprocess.Popen[bytes]
) -> None:
    """Sleep until the run under way has committed ``pages`` pages, or ended."""
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if _pages_done(replica, code) >= pages:
            return
        time.sleep(0.005)


def _pages_done(replica: Path, code: str) -> int:
    if not replica.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{replica}?mode=ro", uri=True, timeout=1)
        try:
            row = db.execute(
                "SELECT pages_done FROM _bulkflow_checkpoints WHERE connector=?",
                (code,),
            ).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row else 0


def _finish(
    url: str,
    code: str,
    replica: Path,
    workdir: Path,
    plan: DifferentialPlan,
    result: DifferentialResult,
) -> None:
    """Complete the connector's interrupted run, then run once more.

    A resumed run carries what the catalog held when it started (and the
    pages after its checkpoint as they are now); what changed behind its
    position comes with the next run, as with any change made during a run.
    So the replica is compared after a run that started after the last change.
    """
    for _ in range(2):
        _export(url, code, replica, workdir, plan, check=True)
        result.runs += 1
        _account(workdir, code, result)


def _account(workdir: Path, code: str, result: DifferentialResult) -> None:
    import orjson

    raw = (workdir / f"report-{code}.json").read_bytes()
    with (workdir / "runs.jsonl").open("ab") as log:
        log.write(raw.replace(b"\n", b"") + b"\n")
    report = orjson.loads(raw)
    result.resumed_runs += bool(report["resumed"])
    result.restarted_runs += bool(report["restarted"])
    result.pages_skipped += int(report["pages_skipped"])


def _command(
    url: str, code: str, into: Path, workdir: Path, plan: DifferentialPlan
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bulkflow",
        "export",
        "--quiet",
        "--url",
        url,
        "--code",
        code,
        "--secret-env",
        _SECRET_VAR,
        "--into",
        f"sqlite:///{into}",
        "--page-size",
        str(plan.page_size),
        "--report",
        str(workdir / f"report-{code}.json"),
        *(
            []
            if plan.whole_page_limit is None
            else ["--whole-page-limit", str(plan.whole_page_limit)]
        ),
    ]


def _environment() -> dict[str, str]:
    return {**os.environ, _SECRET_VAR: DEMO_SECRET}


def _start_export(
    url: str, code: str, into: Path, workdir: Path, plan: DifferentialPlan
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _command(url, code, into, workdir, plan),
        env=_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _export(
    url: str,
    code: str,
    into: Path,
    workdir: Path,
    plan: DifferentialPlan,
    *,
    check: bool,
) -> None:
    process = _start_export(url, code, into, workdir, plan)
    if check:
        _wait(process, code)


def _wait(process: subprocess.Popen[bytes], code: str) -> None:
    _, stderr = process.communicate(timeout=300)
    if process.returncode != 0:
        raise RuntimeError(
            f"export of {code} exited {process.returncode}: {stderr.decode()[-2000:]}"
        )


@contextmanager
def _emulator(store_dir: Path, plan: DifferentialPlan) -> Iterator[str]:
    """``bulkflow serve --state`` in a child process; yield its URL."""
    log = (store_dir.parent / "emulator.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bulkflow",
            "serve",
            "--state",
            str(store_dir),
            "--exact-pages",
            "--token-ttl",
            str(plan.token_ttl),
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        url = ""
        while not url and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            found = re.match(r"url: (\S+)", line)
            url = found.group(1) if found else ""
        if not url:
            raise RuntimeError("the emulator did not start: no 'url:' line")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        log.close()


def replica_tables(path: Path) -> dict[str, dict[Any, tuple[Any, ...]]]:
    """Every data table of a replica as ``{ID: values}``, bookkeeping left out."""
    db = sqlite3.connect(path)
    try:
        names = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type='table' "
                "AND name NOT LIKE '\\_bulkflow%' ESCAPE '\\'"
            )
        ]
        tables: dict[str, dict[Any, tuple[Any, ...]]] = {}
        for name in names:
            quoted = '"' + name.replace('"', '""') + '"'
            columns = [
                row[1]
                for row in db.execute(f"PRAGMA table_info({quoted})")
                if not str(row[1]).startswith("_bulkflow")
            ]
            select = ", ".join('"' + column + '"' for column in columns)
            tables[name] = {
                row[0]: tuple(row[1:])
                for row in db.execute(f"SELECT {select} FROM {quoted}")
            }
        return tables
    finally:
        db.close()


def _compare(
    replica: Path, fresh: Path, result: DifferentialResult, *, label: str = ""
) -> None:
    got, want = replica_tables(replica), replica_tables(fresh)
    for name in sorted(set(got) | set(want)):
        mine, theirs = got.get(name, {}), want.get(name, {})
        diff = TableDiff(
            lost=sorted(set(theirs) - set(mine)),
            extra=sorted(set(mine) - set(theirs)),
            differing=sorted(
                id_ for id_ in set(mine) & set(theirs) if mine[id_] != theirs[id_]
            ),
        )
        result.tables[name + label] = diff
        result.rows_compared += len(theirs)
