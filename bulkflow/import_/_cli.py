"""The ``bulkflow import`` command: its options, progress display and report."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import anyio
import orjson

from bulkflow._console import TerminalProgress, count, seconds
from bulkflow._exceptions import UsageError
from bulkflow._http import safe_url
from bulkflow.import_._batch import DEFAULT_MAX_BATCH_BYTES, MAX_ITEMS_PER_CALL
from bulkflow.import_._report import ImportReport

_DESCRIPTION = """\
Send items to an import connector in batches: signed POSTs, at most --rate
requests per second (in any sliding second, start included), --concurrency
at a time. Each batch's outcome goes to a ledger as soon as it is known, so
running the same command again skips the batches already accepted and
sends the rest. Items the API refuses go to a rejects file (JSONL: table,
item, reason).

Sources: a .jsonl file (one {"table": ..., "item": {...}} per line, or plain
items with --table), a .csv file (--table, and --map to name fields), or a
table of a replica made by `bulkflow export` (--from sqlite:///PATH --table
T): its ID_* references are sent as REF_* fields holding the referenced
items' REFs (ID_PARENT as REF_PARENT, ID_catalogue as REF_catalogue...).
Import the catalogue table first, then products, then product_formats.
"""

_EXAMPLES = """\
examples:
  SL_IMPORT_SECRET=... bulkflow import --url https://api.saleslayer.com/ \\
      --code CN1234I5678 --secret-env SL_IMPORT_SECRET --from items.jsonl
  bulkflow import ... --from products.csv --table products \\
      --map sku=REF,name=product_name_en,categories=REF_catalogue[]
  bulkflow import ... --from sqlite:///luma.sqlite --table catalogue --rate 5/s

exit codes:
  0    every batch accepted, now or by an earlier run
  1    the API or the network failed after retries, or a tracking URL did not
       reach its end in time; ended batches stay in the ledger
  2    wrong usage: a bad option, a missing secret variable
  3    bad data: items refused (see the rejects file) or a bad source record
       (everything before it was sent)
  5    the ledger cannot be used
  130  interrupted (Ctrl-C); the next run skips the batches already accepted
"""


def add_import_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``import`` to the CLI's subcommands."""
    parser = commands.add_parser(
        "import",
        parents=[common],
        help="send items to an import connector",
        description=_DESCRIPTION,
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_target(parser)
    _add_source(parser)
    _add_sending(parser)
    _add_tracking(parser)
    _add_files(parser)
    parser.set_defaults(handler=run_import)


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="the API endpoint")
    parser.add_argument("--code", required=True, help="the import connector's code")

    parser.add_argument(
        "--secret-env",
        required=True,
        metavar="VAR",
        help="the environment variable that holds the import connector's secret",
    )


def _add_source(parser: argparse.ArgumentParser) -> None:

    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="SOURCE",
        help="FILE.jsonl, FILE.csv or sqlite:///PATH (a replica)",
    )

    parser.add_argument(
        "--table", help="the table of plain items, CSV rows or the replica table"
    )

    parser.add_argument(
        "--map",
        metavar="COL=FIELD,...",
        help="CSV column to field; FIELD[] splits the cell on | into a list; "
        "one column must give REF (default: every column under its own name)",
    )

    parser.add_argument(
        "--delete", action="store_true", help="delete every item of the source"
    )

    parser.add_argument(
        "--media",
        choices=("urls", "tuples"),
        default="urls",
        help="replica media columns as file URLs (what the service imports) or "
        "as the exported tuples (exact, for the emulator); default: urls",
    )


def _add_sending(parser: argparse.ArgumentParser) -> None:

    parser.add_argument(
        "--rate",
        default="10/s",
        help="request budget of the host, e.g. 10/s or 300/min, never exceeded "
        "in any sliding window; 'none' for no limit (default: 10/s)",
    )

    parser.add_argument(
        "--concurrency", type=count(1, 64), default=4, help="batches in flight"
    )

    parser.add_argument(
        "--batch-size",
        type=count(1, MAX_ITEMS_PER_CALL),
        default=5000,
        help=f"items per call, at most {MAX_ITEMS_PER_CALL:,} (default: 5000)",
    )

    parser.add_argument(
        "--max-batch-bytes",
        type=count(1024, 2**31),
        default=DEFAULT_MAX_BATCH_BYTES,
        help="encoded bytes per call, before gzip (default: 8 MiB)",
    )

    parser.add_argument(
        "--json", action="store_true", help="send JSON bodies instead of forms"
    )

    parser.add_argument("--gzip", action="store_true", help="gzip request bodies")


def _add_tracking(parser: argparse.ArgumentParser) -> None:

    parser.add_argument(
        "--direct",
        action="store_true",
        help="input_data_directly=1: no queue and no tracking URL",
    )

    parser.add_argument(
        "--tracking-timeout",
        type=seconds,
        default=600.0,
        help="seconds to follow one batch's tracking URL (default: 600)",
    )

    parser.add_argument(
        "--poll-interval",
        type=seconds,
        default=2.0,
        help="seconds between tracking polls (default: 2)",
    )


def _add_files(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report", type=Path, help="write a JSON report to FILE")

    parser.add_argument(
        "--rejects",
        type=Path,
        help="refused items as JSONL (default: import-CODE-SOURCE.rejects.jsonl "
        "in the current folder)",
    )

    parser.add_argument(
        "--ledger",
        type=Path,
        help="the ledger of sent batches (default: beside the rejects file, "
        "…ledger.sqlite)",
    )


def default_rejects(code: str, source: str, table: str | None) -> Path:
    """``import-<code>-<source>[-<table>].rejects.jsonl``, safe as a file name."""
    stem = Path(source.removeprefix("sqlite:///")).stem
    parts = [code, stem, *([table] if table else [])]
    name = "-".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", part) for part in parts)
    return Path(f"import-{name}.rejects.jsonl")


def ledger_beside(rejects: Path) -> Path:
    """The ledger file next to a rejects file."""
    name = rejects.name.removesuffix(".jsonl").removesuffix(".rejects")
    return rejects.with_name(f"{name}.ledger.sqlite")


# -- running ------------------------------------------------------------------


def run_import(args: argparse.Namespace) -> int:
    """The handler of ``bulkflow import``; returns the exit code."""
    from bulkflow._cli import _check_report, _check_url, _secret

    _check_url(args.url)
    _check_report(args.report)
    secret = _secret(args.secret_env, flag="--secret-env")
    report = anyio.run(_import_async, args, secret)
    return _finish(args, report)


async def _import_async(args: argparse.Namespace, secret: str) -> ImportReport:
    from bulkflow.import_._run import import_items
    from bulkflow.import_._sources import open_source, parse_mapping
    from bulkflow.import_._submit import ImportConnector, ImportOptions

    if args.map and not args.source.lower().endswith((".csv", ".tsv")):
        raise UsageError("--map applies to CSV sources only")
    source = open_source(
        args.source,
        table=args.table,
        mapping=parse_mapping(args.map) if args.map else None,
        delete=args.delete,
        media=args.media,
    )
    args.rejects = args.rejects or default_rejects(args.code, args.source, args.table)
    args.ledger = args.ledger or ledger_beside(args.rejects)
    options = ImportOptions(
        rate=None if args.rate.lower() in ("none", "0") else args.rate,
        concurrency=args.concurrency,
        batch_size=args.batch_size,
        max_batch_bytes=args.max_batch_bytes,
        encoding="json" if args.json else "form",
        gzip=args.gzip,
        direct=args.direct,
        tracking_timeout=args.tracking_timeout,
        poll_interval=args.poll_interval,
    )
    with _progress(args) as progress:
        return await import_items(
            ImportConnector(url=args.url, code=args.code, secret=secret),
            source,
            options,
            ledger=args.ledger,
            rejects=args.rejects,
            progress=progress,
        )


def _finish(args: argparse.Namespace, report: ImportReport) -> int:
    from bulkflow._cli import EXIT_DATA, EXIT_FAILED, EXIT_OK, _say, _write_atomically

    if args.report:
        body = report.as_dict()
        body["url"] = safe_url(args.url)
        body["rate"] = args.rate
        body["concurrency"] = args.concurrency
        body["batch_size"] = args.batch_size
        _write_atomically(args.report, orjson.dumps(body, option=orjson.OPT_INDENT_2))
    _say(args, _summary(report))
    if report.items_rejected or report.batches_refused or report.unattributed_errors:
        print(
            f"bulkflow: {report.items_rejected:,} items were refused; see "
            f"{report.rejects}. Fix them and run the same command again: "
            "accepted batches are skipped",
            file=sys.stderr,
        )
        return EXIT_DATA
    if report.batches_unconfirmed:
        print(
            f"bulkflow: {report.batches_unconfirmed} batches did not confirm their "
            "end before --tracking-timeout; run the same command again to send them",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _summary(report: ImportReport) -> str:
    return (
        f"imported into {report.connector} from {report.source}: "
        f"{report.batches_sent:,} batches sent ({report.batches_accepted:,} "
        f"accepted, {report.batches_partial:,} partial, {report.batches_refused:,} "
        f"refused), {report.batches_skipped:,} skipped as already accepted; "
        f"{report.items_new:,} new, {report.items_updated:,} updated, "
        f"{report.items_deleted:,} deleted, {report.items_rejected:,} rejected in "
        f"{report.seconds:.2f} s ({report.items_per_s:,.0f} items/s, at most "
        f"{report.max_requests_in_any_1s_window} requests in any second)"
    )


def _progress(args: argparse.Namespace) -> TerminalProgress:
    """The import's progress display: batches done, refused and skipped."""

    def describe(report: ImportReport) -> tuple[int, None, str]:
        done = report.batches_accepted + report.batches_partial
        text = (
            f"{report.batches_refused:,} refused, {report.batches_skipped:,} "
            f"skipped  items {report.items_sent:,}  {report.items_per_s:,.0f} items/s"
        )
        return done, None, text

    return TerminalProgress(args, describe, unit="batches")
