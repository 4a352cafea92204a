"""The ``bulkflow`` command: serve the emulator, export connectors, benchmark."""

from __future__ import annotations

import argparse
import dataclasses
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
from bulkflow.export import ExportConnector, ExportRun, RunReport
from bulkflow._ijson import backend_warning

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
    _add_serve(commands, common)
    _add_export(commands, common)
    _add_state(commands, common)
    _add_churn(commands, common)
    _add_import(commands, common)
    _add_bench(commands, common)
    return parser


def _add_serve(commands: Any, common: argparse.ArgumentParser) -> None:
    from bulkflow.emulator import DEMO_CODE

    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="run the local 1.18 emulator",
        description=(
            "Serve a catalog on 127.0.0.1 as Sales Layer API 1.18 does: signed "
            "requests, clock checks, pages with signed next_page tokens, refresh "
            "and update runs with one-shot deletions. Prints its URL and the "
            "export connector's code, then serves until Ctrl-C."
        ),
        epilog=(
            "examples:\n"
            "  bulkflow serve --catalog luma --port 8018\n"
            "  bulkflow serve --catalog synthetic:200000 --seed 7 --page-size 50000\n"
            "  bulkflow serve --catalog luma --state ./emu   # keeps changes\n\n"
            f"Without --secret or --secret-env, the connector {DEMO_CODE} uses the\n"
            "public demo secret (see the README): fine for a local emulator only."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--catalog",
        default="luma",
        help="luma (the real Luma sample catalog), synthetic:N (N generated "
        "items) or empty (default: luma)",
    )
    serve.add_argument("--seed", type=int, default=0, help="synthetic catalog seed")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind")
    serve.add_argument("--port", type=_port, default=0, help="0 picks a free port")
    serve.add_argument(
        "--state",
        type=Path,
        help="keep the catalog and its change log in DIR across restarts "
        "(loaded from --catalog the first time)",
    )
    serve.add_argument(
        "--page-size",
        type=_positive,
        help="serve pages of N rows whatever the request asks (default: the "
        "request's pagination, rounded as the service does)",
    )
    serve.add_argument(
        "--exact-pages",
        action="store_true",
        help="do not round the requested pagination (pages of 1 or 7 rows)",
    )
    serve.add_argument("--code", default=DEMO_CODE, help="export connector code")
    serve.add_argument("--secret", help="export connector secret (visible in ps)")
    serve.add_argument(
        "--secret-env", metavar="VAR", help="read the secret from this variable"
    )
    serve.add_argument(
        "--token-ttl", type=int, default=1800, help="next_page lifetime, seconds"
    )
    serve.add_argument(
        "--import-code", help="also serve an import connector with this code"
    )
    serve.add_argument("--import-secret", help="its secret (visible in ps)")
    serve.add_argument(
        "--import-secret-env", metavar="VAR", help="read the import secret from VAR"
    )
    serve.add_argument(
        "--rate-limit",
        metavar="R",
        help="the import connector's budget, e.g. 5/s; past it, API error 10",
    )
    serve.add_argument(
        "--bom", action="store_true", help="start every body with a UTF-8 BOM"
    )
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="switch a fault on, e.g. reset:page=2, http_429:request=1:"
        "retry_after=5, api_error:page=3:code=14:times=2, truncate:page=2, "
        "slow:page=1:delay=2, http_503:page=4 (repeatable)",
    )
    serve.set_defaults(handler=_serve)


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
    export.add_argument("--report", type=Path, help="write a JSON report to FILE")
    export.set_defaults(handler=_export)


def _add_state(commands: Any, common: argparse.ArgumentParser) -> None:
    state = commands.add_parser(
        "state",
        parents=[common],
        help="show or reset what a replica knows of its connectors",
        description=(
            "Show each connector's cursor (the last_update its next run sends), "
            "the checkpoint of an interrupted run (the next run resumes there) "
            "and a summary of the last completed run. --reset forgets a "
            "connector's cursor and checkpoint, so that its next run is a "
            "refresh; the rows stay, and that refresh removes the ones the "
            "connector no longer delivers."
        ),
        epilog=(
            "examples:\n"
            "  bulkflow state --into sqlite:///catalog.sqlite\n"
            "  bulkflow state --into sqlite:///catalog.sqlite --reset CN1234 --yes"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    state.add_argument("--into", required=True, metavar="URL", help="sqlite:///PATH")
    state.add_argument("--connector", metavar="CODE", help="only this connector")
    state.add_argument("--reset", metavar="CODE", help="forget this connector's state")
    state.add_argument(
        "--yes", action="store_true", help="reset without asking (needed in a pipe)"
    )
    state.add_argument("--json", action="store_true", help="print JSON")
    state.set_defaults(handler=_state)


def _add_churn(commands: Any, common: argparse.ArgumentParser) -> None:
    churn = commands.add_parser(
        "churn",
        parents=[common],
        help="change the catalog of an emulator started with --state",
        description=(
            "Apply one round of seeded random changes to the catalog kept in "
            "--state DIR, also while `bulkflow serve --state DIR` runs: the "
            "next update run carries them. Fractions are of the live items; "
            "--add copies and --delete removes products and variants only (a "
            "deleted product's variants leave the scope with it). --hide flips "
            "visibility (picked hidden items come back) and cascades to "
            "sub-categories, their products and variants."
        ),
        epilog=(
            "example:\n"
            "  bulkflow churn --state ./emu --seed 3 --update 0.05 --delete 0.01 "
            "--hide 0.01 --add 0.02"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    churn.add_argument("--state", type=Path, required=True, metavar="DIR")
    churn.add_argument(
        "--seed", type=int, required=True, help="makes the round repeatable"
    )
    for name, what in (
        ("update", "change a text value of"),
        ("delete", "delete"),
        ("hide", "hide (or show again)"),
        ("add", "add a copy of"),
    ):
        churn.add_argument(
            f"--{name}",
            type=_fraction,
            default=0.0,
            metavar="F",
            help=f"{what} this fraction of the items (0 to 1)",
        )
    churn.add_argument(
        "--reconfigure",
        metavar="CODE",
        help="also change this connector's configuration: its next update "
        "becomes a refresh unless the client sends force_update_only=1",
    )
    churn.set_defaults(handler=_churn)


def _add_import(commands: Any, common: argparse.ArgumentParser) -> None:
    from bulkflow.import_._cli import add_import_parser

    add_import_parser(commands, common)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


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


# -- serve --------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    return anyio.run(_serve_async, args)


async def _serve_async(args: argparse.Namespace) -> int:
    from bulkflow.emulator import (
        DEMO_SECRET,
        CatalogStore,
        EmulatorConfig,
        catalog_source,
        open_emulator,
    )
    from bulkflow.emulator._faults import parse_fault

    secret = _secret(args.secret_env, flag="--secret-env") if args.secret_env else None
    secret = secret or args.secret or DEMO_SECRET
    store = CatalogStore.open(args.state)
    try:
        if not store.loaded:
            source = catalog_source(args.catalog, seed=args.seed)
            started = time.monotonic()
            count = store.load(source)
            _say(
                args,
                f"loaded {args.catalog}: {count:,} items in "
                f"{time.monotonic() - started:.1f} s",
            )
        store.put_connector(args.code, secret, kind="export", options={})
        if args.import_code:
            _add_import_connector(args, store)
        config = EmulatorConfig(
            round_pages=not args.exact_pages,
            page_size=args.page_size,
            token_ttl=args.token_ttl,
            bom=args.bom,
            faults=tuple(parse_fault(spec) for spec in args.fault),
        )
        async with open_emulator(
            store, config=config, host=args.host, port=args.port
        ) as url:
            print(f"url: {url}", flush=True)
            print(f"export connector: {args.code}", flush=True)
            if args.import_code:
                print(f"import connector: {args.import_code}", flush=True)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break
    finally:
        store.close()
    return EXIT_OK


def _add_import_connector(args: argparse.Namespace, store: Any) -> None:
    from bulkflow.emulator._imports import add_import_connector

    secret = args.import_secret
    if args.import_secret_env:
        secret = _secret(args.import_secret_env, flag="--import-secret-env")
    if not secret:
        raise UsageError("--import-code needs --import-secret-env (or --import-secret)")
    add_import_connector(store, args.import_code, secret, args.rate_limit)


# -- state and churn ----------------------------------------------------------


def _state(args: argparse.Namespace) -> int:
    from bulkflow.sinks import SQLiteSink, open_sink

    path = Path(args.into.removeprefix("sqlite:///"))
    if args.into.startswith("sqlite:///") and not path.is_file():
        raise UsageError(f"--into {args.into}: there is no such file")
    sink = open_sink(args.into) if args.reset else SQLiteSink(path, read_only=True)
    assert isinstance(sink, SQLiteSink)
    try:
        if args.reset:
            return _reset(args, sink)
        checkpoints = [
            checkpoint
            for checkpoint in sink.checkpoints()
            if args.connector in (None, checkpoint.connector)
        ]
    finally:
        sink.close()
    if args.json:
        body = [dataclasses.asdict(checkpoint) for checkpoint in checkpoints]
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    elif not checkpoints and args.connector:
        print(f"connector {args.connector} has not synced into this database")
    elif not checkpoints:
        print("no connector has synced into this database yet")
    for checkpoint in checkpoints if not args.json else ():
        print(_describe_checkpoint(checkpoint))
    return EXIT_OK


def _describe_checkpoint(checkpoint: Any) -> str:
    lines = [f"connector {checkpoint.connector}"]
    if checkpoint.cursor:
        lines.append(f"  cursor      {checkpoint.cursor} ({_when(checkpoint.cursor)})")
    else:
        lines.append("  cursor      none: the next run is a refresh")
    if checkpoint.in_progress:
        lines.append(
            f"  interrupted {checkpoint.action} run of {_when(checkpoint.run_time)}, "
            f"{checkpoint.pages_done} pages committed; the next run resumes at "
            f"{safe_url(checkpoint.next_url)}"
        )
    if checkpoint.last_run:
        run = checkpoint.last_run
        finished = _when(run.get("finished_at"))
        resumed = " (resumed)" if run.get("resumed") else ""
        lines.append(
            f"  last run    {run.get('action')} finished {finished}, "
            f"{_plural(int(run.get('pages') or 0), 'page')}{resumed}"
        )
    return "\n".join(lines)


def _when(epoch: Any) -> str:
    if not epoch:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(epoch)))


def _reset(args: argparse.Namespace, sink: Any) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"--reset {args.reset}: confirm with --yes (no terminal to ask on)"
            )
        answer = input(
            f"Reset connector {args.reset}? Its next run downloads everything. [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing changed")
            return EXIT_OK
    if sink.reset(args.reset):
        _say(args, f"reset {args.reset}: its next run is a refresh")
    else:
        _say(args, f"{args.reset} had no stored state; nothing changed")
    return EXIT_OK


def _churn(args: argparse.Namespace) -> int:
    from bulkflow.emulator import CatalogStore
    from bulkflow.emulator._churn import churn, reconfigure
    from bulkflow.emulator._store import DB_NAME

    if not (args.state / DB_NAME).exists():
        raise UsageError(
            f"--state {args.state}: no emulator state there; start "
            f"`bulkflow serve --state {args.state}` once first"
        )
    store = CatalogStore.open(args.state)
    try:
        result = churn(
            store,
            seed=args.seed,
            update=args.update,
            delete=args.delete,
            hide=args.hide,
            add=args.add,
        )
        if args.reconfigure:
            try:
                reconfigure(store, args.reconfigure)
            except KeyError:
                raise UsageError(
                    f"--reconfigure {args.reconfigure}: no such connector"
                ) from None
    finally:
        store.close()
    _say(args, f"churn: {result}")
    return EXIT_OK


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
        run = ExportRun(connector, sink, progress=progress)
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
        print("bulkflow: interrupted; committed pages stay", file=sys.stderr)
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
