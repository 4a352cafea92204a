"""The bulkflow command as a user meets it: help, exit codes, one-line errors."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest


def bulkflow(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bulkflow ARGS`` and capture what it says."""
    return subprocess.run(
        [sys.executable, "-m", "bulkflow", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_the_demo_exports_luma_then_finds_nothing_new(tmp_path: Path) -> None:
    """The README's main job: 2,070 items, then an empty update; a JSON report."""
    into = f"sqlite:///{tmp_path / 'luma.sqlite'}"
    first = bulkflow(
        "export", "--demo", "--into", into, "--report", str(tmp_path / "r.json")
    )
    second = bulkflow("export", "--demo", "--into", into)

    assert first.returncode == 0, first.stderr
    assert "refresh" in first.stdout and "2,070 upserts" in first.stdout
    assert second.returncode == 0 and "update" in second.stdout
    assert "0 upserts, 0 deletes" in second.stdout
    report = orjson.loads((tmp_path / "r.json").read_bytes())
    assert report["upserts"] == {
        "catalogue": 32,
        "product_formats": 1847,
        "products": 191,
    }
    assert {
        "connector",
        "action",
        "pages",
        "bytes",
        "seconds",
        "rows_per_s",
        "cursor",
    } <= set(report)
    db = sqlite3.connect(tmp_path / "luma.sqlite")
    assert db.execute("SELECT count(*) FROM products").fetchone() == (191,)
    db.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["export", "--url", "127.0.0.1:8018", "--code", "C", "--secret-env", "S"],
            "not an http",
        ),
        (
            ["export", "--url", "http://[::1", "--code", "C", "--secret-env", "S"],
            "--url",
        ),
        (
            [
                "export",
                "--url",
                "http://127.0.0.1:1/",
                "--code",
                "C",
                "--secret-env",
                "NOPE_UNSET",
            ],
            "NOPE_UNSET",
        ),
        (["export", "--demo", "--page-size", "abc"], "'abc': give 1 to"),
        (["export", "--demo", "--whole-page-limit", "-1"], "'-1': give 0 to"),
        (["serve", "--port", "70000"], "give 0 to 65,535"),
        (["serve", "--catalog", "synthetic:abc"], "synthetic needs a size"),
        (["export", "--demo", "--into", "postgres://x"], "sqlite:///PATH"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """Wrong usage is exit code 2 and one line on stderr that names the option."""
    if "--into" not in args and args[0] == "export":
        args = [*args, "--into", f"sqlite:///{tmp_path / 'x.sqlite'}"]
    result = bulkflow(*args, env={"S": "secret"})

    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error_lines) == 1
    assert "Traceback" not in result.stderr


def test_report_path_is_checked_before_the_run(tmp_path: Path) -> None:
    """A --report that names a directory stops the command before it exports."""
    into = tmp_path / "x.sqlite"
    result = bulkflow(
        "export", "--demo", "--into", f"sqlite:///{into}", "--report", str(tmp_path)
    )

    assert result.returncode == 2 and "is a directory" in result.stderr
    assert not into.exists()


def test_into_a_missing_folder_is_refused(tmp_path: Path) -> None:
    """No silent mkdir -p: a missing folder is named, exit 4."""
    target = tmp_path / "nope" / "x.sqlite"
    result = bulkflow("export", "--demo", "--into", f"sqlite:///{target}")

    assert result.returncode == 4
    assert "does not exist" in result.stderr and not target.parent.exists()


def test_state_shows_and_never_writes(tmp_path: Path) -> None:
    """`state` reads; on a foreign file it says so and adds nothing to it."""
    replica = tmp_path / "luma.sqlite"
    assert (
        bulkflow("export", "--demo", "--into", f"sqlite:///{replica}").returncode == 0
    )
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()

    shown = bulkflow("state", "--into", f"sqlite:///{replica}")
    foreign = bulkflow("state", "--into", f"sqlite:///{other}")
    missing = bulkflow("state", "--into", f"sqlite:///{tmp_path / 'missing.sqlite'}")

    assert shown.returncode == 0 and "CN_BULKFLOW_DEMO" in shown.stdout
    assert "cursor" in shown.stdout and "last run" in shown.stdout
    assert foreign.returncode == 5 and "not bulkflow's" in foreign.stderr
    reset = bulkflow("state", "--into", f"sqlite:///{other}", "--reset", "CN", "--yes")
    assert reset.returncode == 5
    tables = sqlite3.connect(other).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("t",)]
    assert missing.returncode == 2 and not (tmp_path / "missing.sqlite").exists()


def test_reset_in_a_pipe_needs_yes(tmp_path: Path) -> None:
    """Without a terminal to ask on, --reset refuses unless --yes is given."""
    replica = tmp_path / "luma.sqlite"
    bulkflow("export", "--demo", "--into", f"sqlite:///{replica}")

    refused = bulkflow(
        "state", "--into", f"sqlite:///{replica}", "--reset", "CN_BULKFLOW_DEMO"
    )
    done = bulkflow(
        "state",
        "--into",
        f"sqlite:///{replica}",
        "--reset",
        "CN_BULKFLOW_DEMO",
        "--yes",
    )
    again = bulkflow("export", "--demo", "--into", f"sqlite:///{replica}")

    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert done.returncode == 0
    assert "refresh" in again.stdout


def test_verbose_logs_pages_and_quiet_says_nothing(tmp_path: Path) -> None:
    """-v logs each page; -q prints nothing on stdout."""
    into = f"sqlite:///{tmp_path / 'x.sqlite'}"
    verbose = bulkflow("export", "--demo", "--into", into, "-v", "--page-size", "1000")
    quiet = bulkflow(
        "export", "--demo", "--into", f"sqlite:///{tmp_path / 'y.sqlite'}", "-q"
    )

    assert verbose.stderr.count("page.complete") == 3
    assert "run.complete" in verbose.stderr
    assert quiet.returncode == 0 and quiet.stdout == ""


def test_help_teaches_with_examples() -> None:
    """Every command's --help has examples; the main help lists exit codes."""
    main = bulkflow("--help")
    assert "exit codes" in main.stdout and "--demo" in main.stdout
    for command in ("serve", "export", "import", "state", "churn", "bench"):
        page = bulkflow(command, "--help")
        assert page.returncode == 0
        assert "example" in page.stdout.lower(), command


def test_a_failed_run_still_writes_its_report(tmp_path: Path) -> None:
    """--report says what failed, with the exit code, when the run fails."""
    report = tmp_path / "r.json"
    result = bulkflow(
        "export",
        "--url",
        "http://127.0.0.1:9/",
        "--code",
        "C",
        "--secret-env",
        "S",
        "--into",
        f"sqlite:///{tmp_path / 'x.sqlite'}",
        "--report",
        str(report),
        env={"S": "the-secret-value"},
    )
    body = orjson.loads(report.read_bytes())

    assert result.returncode == 1
    assert body["ok"] is False and body["exit_code"] == 1
    assert "cannot reach the server" in body["error"]
    assert "the-secret-value" not in report.read_text()
