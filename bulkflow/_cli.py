"""The ``bulkflow`` command: serve the emulator, export connectors, benchmark.

Over 400 lines: most of it is argument definitions whose help teaches.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sqlite3
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import anyio
import orjson

from bulkflow import __version__
from bulkflow._console import TerminalProgress, count
from bulkflow._exceptions import (
    BulkflowError,
    DataError,
    SinkError,
    StateError,
    UsageError,
)
from bulkflow._http import safe_url
from bulkflow._ijson import backend_warning
from bulkflow.export import ExportConnector, ExportRun, RunReport
from bulkflow.export._parser import WHOLE_PAGE_BYTES

logger = logging.getLogger("bulkflow.cli")

EXIT_OK = 0
EXIT_FAILED = 1  # the service or the network failed after retries
EXIT_USAGE = 2
EXIT_DATA = 3  # the feed or the input is wrong
EXIT_SINK = 4  # the destination refused a write
EXIT_STATE = 5  # a stored checkpoint cannot be used
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\
exit codes:
  0    success
  1    the API or the network failed (after retries); committed pages stay
  2    wrong usage: a bad option, a missing secret variable
  3    bad data: a page or row the feed got wrong; nothing of that page landed
  4    the destination refused a write
  5    a stored checkpoint cannot be used
  130  interrupted (Ctrl-C); committed pages stay, the next run resumes
"""

MAIN_HELP = """\
bulkflow moves catalog data out of Sales Layer 1.18 export connectors into a
database, page by page, in bounded memory, resuming after a crash.

Try it without any account: the demo starts a local emulator with the real
Luma catalog (2,070 items) and exports it into SQLite:

  bulkflow export --demo --into sqlite:///luma.sqlite

Run it again and it asks only for what changed since (an empty update).
"""


class _Parser(argparse.ArgumentParser):
    """argparse that exits with bulkflow's usage code and one readable line."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"bulkflow: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bulkflow`` command."""
    parser = _Parser(
        prog="bulkflow",
        description=MAIN_HELP,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=__version__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log each retry and page; show the full cause of an error",
    )
    common.add_argument(
        "-q", "--quiet", action="store_true", help="no progress, no summary line"
    )
    common.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="how log lines on stderr look (default: text)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    # Imported here, not at the top: those modules use this one's helpers.
    from bulkflow._cli_serve import add_serve
    from bulkflow._cli_state import add_churn, add_state

    add_serve(commands, common)
    _add_export(commands, common)
    add_state(commands, common)
    add_churn(commands, common)
    _add_import(commands, common)
    _add_bench(commands, common)
    return parser


def _add_export(commands: Any, common: argparse.ArgumentParser) -> None:
    export = commands.add_parser(
        "export",
        parents=[common],
        help="export a connector into a database",
        description=(
            "Read an export connector page by page into a database. The first "
            "run gets everything (refresh); later runs send the stored cursor "
            "and get only what changed (update), deletions included. Each page "
            "commits with its checkpoint: a run that is killed resumes after "
            "its last committed page."
        ),
        epilog=(
            "examples:\n"
            "  bulkflow export --demo --into sqlite:///luma.sqlite\n"
            "  SL_SECRET=... bulkflow export --url https://api.saleslayer.com/ \\\n"
            "      --code CN1234H5678C90 --secret-env SL_SECRET \\\n"
            "      --into sqlite:///catalog.sqlite --report run.json\n\n"
            "sqlite:///relative/path.sqlite or sqlite:////absolute/path.sqlite\n\n"
            + EXIT_CODES_HELP
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="the API endpoint of the connector")
    source.add_argument(
        "--demo",
        action="store_true",
        help="start the emulator with the Luma catalog in this process and "
        "export from it",
    )
    export.add_argument("--code", help="the export connector's code")
    export.add_argument(
        "--secret-env",
        metavar="VAR",
        help="the environment variable that holds the connector's secret "
        "(never pass secrets as arguments: they show in ps and shell history)",
    )
    export.add_argument(
        "--into", required=True, metavar="URL", help="destination: sqlite:///PATH"
    )
    export.add_argument(
        "--page-size",
        type=_positive,
        default=5000,
        help="rows per page to ask for; the service rounds it (default: 5000)",
    )
    export.add_argument(
        "--lag",
        type=int,
        default=0,
        metavar="SECONDS",
        help="ask for changes from the cursor minus SECONDS, to catch changes "
        "the service made visible late (they arrive twice, harmlessly)",
    )
    export.add_argument(
        "--whole-page-limit",
        type=count(0, 2**31),
        default=0,
        metavar="BYTES",
        help="read a page whole and parse it with orjson when it declares at "
        "most BYTES: about a tenth faster for small pages, e.g. "
        f"{WHOLE_PAGE_BYTES} (4 MiB); a page naming data or a table twice "
        "under different escapes is then read as orjson reads it, the last "
        "counting (default: 0, every page streams)",
    )
    export.add_argument("--report", type=Path, help="write a JSON report to FILE")
    export.set_defaults(handler=_export)


def _add_import(commands: Any, common: argparse.ArgumentParser) -> None:
    from bulkflow.import_._cli import add_import_parser

    add_import_parser(commands, common)


def _add_bench(commands: Any, common: argparse.ArgumentParser) -> None:
    try:
        from bulkflow._bench._cli import add_bench_parser
    except ImportError:  # pragma: no cover - the harness ships with bulkflow
        return
    add_bench_parser(commands)


_positive = count(1, 2**31)
_port = count(0, 65535)


def _check_url(url: str, *, flag: str = "--url") -> str:
    """Refuse an endpoint that is not an http(s) URL with a host, before any run."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"{flag} {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"{flag} {url!r} is not an http(s) URL with a host, e.g. "
            "https://api.saleslayer.com/"
        )
    del port
    return url


def _check_report(path: Path | None) -> None:
    """Refuse a --report path that cannot be written, before the run starts."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"--report {path}: is a directory; name a file")
    if not path.parent.is_dir():
        raise UsageError(f"--report {path}: the folder {path.parent} does not exist")


# -- export -------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    if not args.demo and not (args.code and args.secret_env):
        raise UsageError("--url needs --code and --secret-env")
    if not args.demo:
        _check_url(args.url)
    _check_report(args.report)
    return anyio.run(_export_async, args)


async def _export_async(args: argparse.Namespace) -> int:
    from bulkflow.sinks import open_sink

    sink = open_sink(args.into)
    try:
        if args.demo:
            await _export_demo(args, sink)
        else:
            connector = ExportConnector(
                url=args.url,
                code=args.code,
                secret=_secret(args.secret_env, flag="--secret-env"),
                page_size=args.page_size,
                lag=args.lag,
            )
            await _run_export(args, connector, sink)
    finally:
        sink.close()
    return EXIT_OK


async def _run_export(
    args: argparse.Namespace, connector: ExportConnector, sink: Any
) -> None:
    """Run with progress; write the report, also when the run fails."""
    with _progress(args) as progress:
        run = ExportRun(
            connector,
            sink,
            progress=progress,
            whole_page_bytes=args.whole_page_limit,
        )
        try:
            await run.run()
        except BaseException as error:
            _write_report(args, run.report, error)
            raise
    _write_report(args, run.report, None)
    _summary(args, run.report)


async def _export_demo(args: argparse.Namespace, sink: Any) -> None:
    from bulkflow.emulator import (
        DEMO_CODE,
        DEMO_SECRET,
        CatalogStore,
        catalog_source,
        open_emulator,
    )

    store = CatalogStore.open(None)
    try:
        store.load(catalog_source("luma"))
        store.put_connector(DEMO_CODE, DEMO_SECRET, kind="export", options={})
        async with open_emulator(store) as url:
            args.url = url
            connector = ExportConnector(
                url=url,
                code=DEMO_CODE,
                secret=DEMO_SECRET,
                page_size=args.page_size,
                service="bulkflow-demo",
            )
            await _run_export(args, connector, sink)
    finally:
        store.close()


def _write_report(
    args: argparse.Namespace, report: RunReport, error: BaseException | None
) -> None:
    """The --report JSON; a failed run's says what failed and what did land."""
    if not args.report:
        return
    body = report.as_dict()
    body["url"] = safe_url(args.url)
    body["into"] = args.into
    body["page_size"] = args.page_size
    body["ok"] = error is None
    if error is not None:
        body["error"] = (
            str(error).strip().splitlines()[0] if str(error) else repr(error)
        )
        body["exit_code"] = (
            EXIT_INTERRUPTED
            if isinstance(error, KeyboardInterrupt)
            else _exit_code(error)
        )
    _write_atomically(args.report, orjson.dumps(body, option=orjson.OPT_INDENT_2))


def _summary(args: argparse.Namespace, report: RunReport) -> None:
    upserts = sum(report.upserts.values())
    deletes = sum(report.deletes.values())
    megabytes = report.bytes / 1e6
    _say(
        args,
        f"exported {report.connector}: {report.action}, {_plural(report.pages, 'page')}"
        + (f" ({report.pages_skipped} skipped on resume)" if report.resumed else "")
        + f", {upserts:,} upserts, {deletes:,} deletes, {megabytes:,.1f} MB in "
        f"{report.seconds:.2f} s ({report.rows_per_s:,.0f} rows/s); "
        f"cursor {report.cursor}",
    )


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _progress(args: argparse.Namespace) -> TerminalProgress:
    """The export's progress display: pages done of the run's page count."""

    def describe(report: Any) -> tuple[int, int | None, str]:
        text = (
            f"{report.rows:,} rows  {report.bytes / 1e6:,.1f} MB  "
            f"{report.rows_per_s:,.0f} rows/s"
        )
        return report.pages + report.pages_skipped, report.page_count, text

    return TerminalProgress(args, describe, unit="pages")


# -- shared -------------------------------------------------------------------


def _secret(variable: str, *, flag: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise UsageError(
            f"{flag} {variable}: the variable is not set or empty; "
            f"export {variable}=<the connector's secret> first"
        )
    return value


def _say(args: argparse.Namespace, line: str) -> None:
    if not args.quiet:
        print(line, flush=True)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        return orjson.dumps(entry).decode()


def _configure_logging(args: argparse.Namespace) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if getattr(args, "log_format", "text") == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("bulkflow: %(levelname)s: %(message)s"))
    root = logging.getLogger("bulkflow")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING)
    root.propagate = False


def _exit_code(error: BaseException) -> int:
    if isinstance(error, UsageError):
        return EXIT_USAGE
    if isinstance(error, DataError):
        return EXIT_DATA
    if isinstance(error, SinkError):
        return EXIT_SINK
    if isinstance(error, StateError):
        return EXIT_STATE
    if isinstance(error, sqlite3.Error):
        return EXIT_SINK
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``bulkflow`` command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args)
    slow = backend_warning()
    if slow:
        print(f"bulkflow: WARNING: {slow}", file=sys.stderr)
    # SIGTERM stops a run the way Ctrl-C does: the page being written is
    # rolled back, committed pages stay.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        code: int = args.handler(args)
        return code
    except KeyboardInterrupt:
        if args.command in ("export", "import"):
            detail = "; what was committed stays and the next run continues from it"
        else:
            detail = ""
        print(f"bulkflow: interrupted{detail}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our output went away (`| head`); the work is done.
        sys.stderr.close()
        return EXIT_OK
    except Exception as error:  # one readable line, whatever went wrong
        _report_error(args, error)
        return _exit_code(error)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _report_error(args: argparse.Namespace, error: BaseException) -> None:
    """One line on stderr; the traceback too with --verbose."""
    if isinstance(error, BulkflowError):
        text = str(error)
    else:
        text = f"{type(error).__name__}: {error}"
    first_line = text.strip().splitlines()[0] if text.strip() else repr(error)
    if getattr(args, "log_format", "text") == "json":
        entry = {
            "time": round(time.time(), 3),
            "level": "error",
            "logger": "bulkflow.cli",
            "message": first_line,
            "exit_code": _exit_code(error),
        }
        print(orjson.dumps(entry).decode(), file=sys.stderr)
    else:
        print(f"bulkflow: error: {first_line}", file=sys.stderr)
    if getattr(args, "verbose", False):
        traceback.print_exception(error, file=sys.stderr)
