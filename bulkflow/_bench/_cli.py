"""The ``bulkflow bench`` command: its options, and running them."""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkflow._console import count, seconds
from bulkflow._exceptions import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console

    from bulkflow._bench._run import Plan

#: What ``--smoke`` measures: a few seconds, for CI.
SMOKE_ROWS = 5_000
SMOKE_PAGE_SIZE = 1_000

_DESCRIPTION = """\
Measure `bulkflow export` on this machine beside what the machine allows.

A replay server (its own process) renders every page of a synthetic catalog
once, then serves the stored bytes, so the server is not what is measured.
Against it, each in a process of its own and one kind at a time, run:

  ceilings   body read (aiohttp, bytes dropped), ijson parse (C backend, no
             sink), whole-page orjson parse, and SQLite sink writes of rows
             already parsed: how fast each stage can go alone
  bulkflow   a real export into a fresh SQLite file: rows/s from its report,
             peak RSS of its process (ru_maxrss from wait4, i.e. VmHWM)
  naive      a whole-page client (fetch, orjson.loads, executemany, commit,
             next page): rows/s and peak RSS the same way
  dlt        where installed (pip install 'bulkflow[dlt]'): dlt's REST client
             and a pipeline into DuckDB (dlt-duckdb) and into Parquet files
             (dlt-parquet), full refresh, rows/s and peak RSS the same way;
             not with --smoke or --no-dlt, and the report says why

Rates count rows (or bytes) over the seconds of the work itself, without
interpreter start-up. The machine is shared and noisy: use --repeat to keep
the fastest of several runs, and read a single number with care.
"""

_EPILOG = """\
examples:
  bulkflow bench export --smoke
  bulkflow bench export --rows 200000 --page-size 50000 --json bench.json
  bulkflow bench export --rows 50000 --page-size 10000 --no-dlt
  bulkflow bench export --rows 200000 --page-sizes 1000,10000,50000,200000 \\
      --json sweep.json --plot sweep.png
"""


def _page_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 500:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give page sizes of 500 rows or more, e.g. 1000,10000,50000"
        )
    return sizes


def add_bench_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``bench`` and its ``export`` and ``import`` subcommands to the CLI."""
    from bulkflow._bench._cli_import import IMPORT_EPILOG, add_import_bench

    bench = subparsers.add_parser(
        "bench",
        help="measure bulkflow against baselines and the machine's ceilings",
        description="Measure bulkflow on this machine, beside a naive client and "
        "the ceilings of the machine. See `bulkflow bench export -h` and "
        "`bulkflow bench import -h`.",
        epilog=_EPILOG + IMPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    kinds = bench.add_subparsers(dest="bench_command", required=True, metavar="KIND")
    export = kinds.add_parser(
        "export",
        help="benchmark export runs into SQLite",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_scenario_options(export)
    smoke = (
        f"a run of a few seconds for CI: {SMOKE_ROWS:,} rows, page size "
        f"{SMOKE_PAGE_SIZE:,}, no dlt baselines; overrides --rows, --page-size "
        "and --page-sizes"
    )
    add_control_options(export, smoke=smoke)
    export.add_argument(
        "--no-dlt",
        action="store_true",
        help="skip the dlt baselines where dlt is installed; at about a tenth "
        "of bulkflow's rows/s they take most of a run's time",
    )
    add_output_options(
        export,
        json="write every figure as JSON (bulkflow, baselines, ceilings, ratios, "
        "targets, machine, and each page size of a sweep)",
        plot="draw throughput and peak RSS against page size (needs matplotlib)",
    )
    export.set_defaults(handler=run_bench)
    add_import_bench(kinds)


def _add_scenario_options(parser: argparse.ArgumentParser) -> None:
    scenario = parser.add_argument_group("what to measure")
    scenario.add_argument(
        "--rows",
        metavar="N",
        type=count(1, 100_000_000),
        default=200_000,
        help="items in the synthetic catalog, i.e. rows per run (default 200,000)",
    )

    scenario.add_argument(
        "--page-size",
        metavar="N",
        type=count(500, 10_000_000),
        default=50_000,
        help="rows per page (default 50,000); with --page-sizes, the page size "
        "of the headline figures when it is one of them (else the largest)",
    )

    scenario.add_argument(
        "--page-sizes",
        type=_page_sizes,
        metavar="LIST",
        help="measure each of these page sizes, e.g. 1000,10000,50000,200000; "
        "the plot draws figures against them",
    )

    scenario.add_argument(
        "--sink",
        choices=["sqlite"],
        default="sqlite",
        help="where the rows go; SQLite is the only sink today",
    )

    scenario.add_argument(
        "--connectors",
        metavar="K",
        type=count(1, 16),
        default=1,
        help="exports of the same feed run side by side, each in its own process "
        "and SQLite file; rows/s adds their rows (default 1)",
    )

    scenario.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of the synthetic catalog"
    )


def add_control_options(parser: argparse.ArgumentParser, *, smoke: str) -> None:
    """``--repeat``, ``--timeout`` and ``--smoke`` (whose help is ``smoke``)."""
    control = parser.add_argument_group("how to run it")
    control.add_argument(
        "--repeat",
        metavar="N",
        type=count(1, 20),
        default=1,
        help="run each measurement this many times and keep the fastest "
        "(peak RSS: the largest); default 1",
    )

    control.add_argument(
        "--timeout",
        type=seconds,
        default=1800.0,
        metavar="SECONDS",
        help="the most any one process may take before it is killed (default 1800)",
    )

    control.add_argument("--smoke", action="store_true", help=smoke)


def add_output_options(
    parser: argparse.ArgumentParser, *, json: str, plot: str
) -> None:
    """``--json``, ``--plot`` and ``--work-dir``, with the help texts given."""
    output = parser.add_argument_group("where results go")
    output.add_argument("--json", type=Path, metavar="FILE", help=json)
    output.add_argument("--plot", type=Path, metavar="FILE.png", help=plot)

    output.add_argument(
        "--work-dir",
        type=Path,
        metavar="DIR",
        help="keep databases, reports and logs in DIR (default: a temporary "
        "folder, removed at the end)",
    )


def plan_from_args(args: argparse.Namespace, work_dir: Path) -> Plan:
    """The :class:`~bulkflow._bench._run.Plan` the options describe."""
    from bulkflow._bench._dlt import DESTINATIONS
    from bulkflow._bench._run import Plan

    if args.smoke:
        rows, sizes, headline = SMOKE_ROWS, (SMOKE_PAGE_SIZE,), SMOKE_PAGE_SIZE
    elif args.page_sizes:
        rows, sizes = args.rows, tuple(dict.fromkeys(args.page_sizes))
        headline = args.page_size if args.page_size in sizes else max(sizes)
    else:
        rows, sizes, headline = args.rows, (args.page_size,), args.page_size
    return Plan(
        rows=rows,
        page_sizes=sizes,
        headline=headline,
        connectors=args.connectors,
        seed=args.seed,
        repeat=args.repeat,
        timeout=args.timeout,
        work_dir=work_dir,
        keep=args.work_dir is not None,
        dlt=() if dlt_skipped(args) else DESTINATIONS,
    )


#: What the dlt baselines import: dlt with its DuckDB and Parquet extras.
_DLT_MODULES = ("dlt", "duckdb", "pyarrow")


def dlt_skipped(args: argparse.Namespace) -> str | None:
    """Why the dlt baselines do not run, or ``None`` when they do."""
    if args.no_dlt:
        return "not run: --no-dlt"
    if args.smoke:
        return "not run with --smoke, which must take seconds"
    missing = [name for name in _DLT_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        return (
            f"not run: {', '.join(missing)} not installed "
            "(an optional extra: pip install 'bulkflow[dlt]')"
        )
    return None


def run_bench(args: argparse.Namespace) -> int:
    """Run ``bulkflow bench export``; return the exit status.

    Returns 1 when a measured process failed (the report says which), else 0;
    missed targets are reported, not failed on.
    """
    from bulkflow._bench import _report
    from bulkflow._bench._run import run_plan

    def measure(work_dir: Path, progress: Callable[[str], None]) -> dict[str, Any]:
        plan = plan_from_args(args, work_dir)
        raw = run_plan(plan, progress)
        return _report.build_report(plan, raw, dlt_skipped(args))

    return run_and_report(args, measure, _report.print_report, _report.write_plot)


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse output paths that cannot be written before minutes of measuring.

    Raises:
        UsageError: naming the option and what is wrong with its path.
    """
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if path is None:
            continue
        folder = path.parent if str(path.parent) else Path(".")
        if path.is_dir():
            raise UsageError(f"{option} {path}: is a directory; give a file")
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise UsageError(f"{option} {path}: cannot write in {folder}")
    if args.work_dir is not None:
        try:
            args.work_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--work-dir {args.work_dir}: {exc.strerror}") from None


def run_and_report(
    args: argparse.Namespace,
    measure: Callable[[Path, Callable[[str], None]], dict[str, Any]],
    show: Callable[[dict[str, Any], Console], None],
    plot: Callable[[dict[str, Any], Path], str | None],
) -> int:
    """Measure in the work folder, then print, write and plot the report.

    ``measure`` gets the work folder (``--work-dir``, or a temporary one
    removed afterwards) and a progress callback, and returns the report.
    Returns 1 when the report lists failures, else 0.
    """
    from rich.console import Console

    from bulkflow._bench._report import write_json

    _check_outputs(args)
    console = Console(stderr=True, log_path=False)
    temporary = args.work_dir is None
    work_dir = (
        Path(tempfile.mkdtemp(prefix="bulkflow-bench-")) if temporary else args.work_dir
    )
    try:
        report = measure(work_dir, console.log)
    finally:
        if temporary:
            shutil.rmtree(work_dir, ignore_errors=True)
    show(report, Console())
    if args.json is not None:
        write_json(report, args.json)
    if args.plot is not None:
        why_not = plot(report, args.plot)
        if why_not:
            console.print(f"--plot: {why_not}")
    return 1 if report["failures"] else 0
