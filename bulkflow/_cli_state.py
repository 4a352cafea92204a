"""``bulkflow state`` and ``bulkflow churn``: look at a replica, change an emulator."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bulkflow._cli import EXIT_OK, _plural, _say
from bulkflow._exceptions import UsageError
from bulkflow._http import safe_url


def add_state(commands: Any, common: argparse.ArgumentParser) -> None:
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


def add_churn(commands: Any, common: argparse.ArgumentParser) -> None:
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


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


# -- state and churn ----------------------------------------------------------


def _state(args: argparse.Namespace) -> int:
    from bulkflow.sinks import SQLiteSink

    path = Path(args.into.removeprefix("sqlite:///"))
    if args.into.startswith("sqlite:///") and not path.is_file():
        raise UsageError(f"--into {args.into}: there is no such file")
    # Read-only first, also for --reset: a file that is not bulkflow's is
    # refused before anything could be written into it.
    sink = SQLiteSink(path, read_only=True)
    try:
        checkpoints = [
            checkpoint
            for checkpoint in sink.checkpoints()
            if args.connector in (None, checkpoint.connector)
        ]
    finally:
        sink.close()
    if args.reset:
        return _reset(args)
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


def _reset(args: argparse.Namespace) -> int:
    from bulkflow.sinks import SQLiteSink, open_sink

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
    sink = open_sink(args.into)
    assert isinstance(sink, SQLiteSink)
    try:
        done = sink.reset(args.reset)
    finally:
        sink.close()
    if done:
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
