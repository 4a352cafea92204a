"""The ``bulkflow bench import`` command: its options, and running them."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkflow._console import count
from bulkflow.import_._batch import MAX_ITEMS_PER_CALL

if TYPE_CHECKING:
    from collections.abc import Callable

    from bulkflow._bench._import_run import ImportPlan

#: What ``--smoke`` measures: a few seconds, for CI.
SMOKE_ITEMS = 2_000
SMOKE_BATCH_SIZE = 200
SMOKE_RATE = 5.0

#: The highest budget a rate scenario may ask for, calls per second.
MAX_RATE = 1000.0

_DESCRIPTION = """\
Measure `bulkflow import` on this machine beside a naive client and the
ceilings of the machine, without and with a rate budget.

The clients send the same synthetic JSONL file (--items, in the three Luma
tables, parents first). Every measurement gets a fresh import server in a
process of its own on 127.0.0.1: the emulator's request handling
(signature, clock, the connector's sliding-window budget answered with API
error 10), which by default counts each item's REF instead of applying it
(--server lean), so that the server is not what is measured. Against it,
each in a process of its own, one after the other, run:

  ceilings   read + encode: the file parsed, batched and encoded by
             bulkflow's Batcher, no network (the client side alone); POST
             round trip: those bodies POSTed, --concurrency at a time,
             answers dropped (the server and loopback alone)
  bulkflow   the real `bulkflow import --direct` command: items/s, batches
             and slow-downs from its --report, peak RSS of its process
             (its own ru_maxrss, read by a small reaper process)
  naive      loads the whole file, then one signed POST per batch, one at a
             time, no rate control beyond sleeping on a refusal

Throughput scenarios (one per --batch-sizes) have no rate limit. Rate
scenarios (one per --rates) give the server that budget and bulkflow the
same --rate; the server's own log then says how many calls reached it in
any sliding second (refused ones included), how many it refused, and the
pace of the calls it let in over the budget (÷ budget). A sliding window
lets a burst of `rate` calls through at once, so over a short run a bursty
client's pace can pass 1: give the budget several seconds of calls. Every
run checks that the server received every item of the file.

Rates count items over the seconds of the work itself, from before the
file is read to after the last answer, without interpreter start-up. The
machine is shared and noisy: use --repeat, and read one number with care.
"""

IMPORT_EPILOG = """\
  bulkflow bench import --smoke
  bulkflow bench import --items 20000 --batch-sizes 1000,5000 --rates 5
  bulkflow bench import --items 100000 --batch-sizes 100,1000,10000 \\
      --rates 5,20 --rate-batch-size 2000 --json import.json --plot import.png
"""

_EPILOG = "examples:\n" + IMPORT_EPILOG


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or not all(1 <= size <= MAX_ITEMS_PER_CALL for size in sizes):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give batch sizes of 1 to {MAX_ITEMS_PER_CALL:,} items "
            "(the API's limit per call), e.g. 100,1000,10000"
        )
    return sizes


def _rates(text: str) -> tuple[float, ...]:
    if text.strip().lower() == "none":
        return ()
    try:
        rates = tuple(
            float(part.strip().removesuffix("/s")) for part in text.split(",")
        )
    except ValueError:
        rates = ()
    if not rates or not all(0 < rate <= MAX_RATE for rate in rates):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give budgets in calls per second above 0 and at most "
            f"{MAX_RATE:g}, e.g. 5,20 (or 'none' for no rate scenario)"
        )
    return rates


def add_import_bench(kinds: argparse._SubParsersAction[Any]) -> None:
    """Add ``bench import`` to the ``bench`` subcommands."""
    from bulkflow._bench._cli import add_control_options, add_output_options

    parser = kinds.add_parser(
        "import",
        help="benchmark import runs: throughput and rate budgets",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_scenario_options(parser)
    add_control_options(
        parser,
        smoke=f"a run of a few seconds for CI: {SMOKE_ITEMS:,} items, batch size "
        f"{SMOKE_BATCH_SIZE:,}, one budget of {SMOKE_RATE:g}/s; overrides --items, "
        "the batch sizes and --rates",
    )
    add_output_options(
        parser,
        json="write every figure as JSON (bulkflow, baselines.naive, ceilings, "
        "ratios, rates, machine, and each batch size of a sweep)",
        plot="draw items/s and peak RSS against batch size, and the calls per "
        "sliding second of each budget (needs matplotlib)",
    )
    parser.set_defaults(handler=run_bench_import)


def _add_scenario_options(parser: argparse.ArgumentParser) -> None:
    scenario = parser.add_argument_group("what to measure")
    scenario.add_argument(
        "--items",
        metavar="N",
        type=count(100, 10_000_000),
        default=100_000,
        help="items in the synthetic file every client sends (default 100,000; "
        "about 190 bytes of JSON each)",
    )
    scenario.add_argument(
        "--batch-size",
        metavar="N",
        type=count(1, MAX_ITEMS_PER_CALL),
        default=5_000,
        help="items per call (default 5,000, bulkflow's own); with --batch-sizes, "
        "the batch size of the headline figures when it is one of them (else "
        "the largest)",
    )
    scenario.add_argument(
        "--batch-sizes",
        type=_batch_sizes,
        metavar="LIST",
        help="a throughput scenario for each of these batch sizes, e.g. "
        "100,1000,10000; the plot draws figures against them",
    )
    scenario.add_argument(
        "--rates",
        type=_rates,
        metavar="LIST",
        default=(5.0,),
        help="a rate scenario for each budget, in calls per second, e.g. 5,20 "
        "(default 5; 'none' for none). A run takes about items ÷ batch size ÷ "
        "rate seconds per client",
    )
    scenario.add_argument(
        "--rate-batch-size",
        metavar="N",
        type=count(1, MAX_ITEMS_PER_CALL),
        help="items per call in the rate scenarios (default: the smallest batch "
        "size measured, or less, so that the fastest budget gets at least 4 s "
        "of calls)",
    )
    scenario.add_argument(
        "--concurrency",
        metavar="K",
        type=count(1, 64),
        default=4,
        help="bulkflow's --concurrency (batches in flight), and the POST "
        "ceiling's (default 4, bulkflow's own)",
    )
    scenario.add_argument(
        "--server",
        choices=("lean", "emulator"),
        default="lean",
        help="lean: the emulator's checks and rate budget, items counted by REF "
        "(default); emulator: items applied to its catalog, as `bulkflow "
        "serve` does, which costs the server about as much CPU as the client",
    )
    scenario.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of the synthetic items"
    )


def default_rate_batch_size(
    items: int, sizes: tuple[int, ...], rates: tuple[float, ...]
) -> int:
    """The smallest batch size, made smaller to give the fastest budget 4 s of calls.

    A sliding one-second window lets a burst of ``rate`` calls through at
    once: a run of few calls says little about pacing.
    """
    if not rates:
        return min(sizes)
    return max(1, min(min(sizes), items // math.ceil(4 * max(rates))))


def import_plan_from_args(args: argparse.Namespace, work_dir: Path) -> ImportPlan:
    """The :class:`~bulkflow._bench._import_run.ImportPlan` the options describe."""
    from bulkflow._bench._import_run import ImportPlan

    if args.smoke:
        items, sizes, headline = SMOKE_ITEMS, (SMOKE_BATCH_SIZE,), SMOKE_BATCH_SIZE
        rates: tuple[float, ...] = (SMOKE_RATE,)
        rate_batch_size = SMOKE_BATCH_SIZE
    else:
        items, rates = args.items, tuple(dict.fromkeys(args.rates))
        sizes = tuple(dict.fromkeys(args.batch_sizes or (args.batch_size,)))
        headline = args.batch_size if args.batch_size in sizes else max(sizes)
        rate_batch_size = args.rate_batch_size or default_rate_batch_size(
            items, sizes, rates
        )
    return ImportPlan(
        items=items,
        batch_sizes=sizes,
        headline=headline,
        rates=rates,
        rate_batch_size=rate_batch_size,
        concurrency=args.concurrency,
        server_mode=args.server,
        seed=args.seed,
        repeat=args.repeat,
        timeout=args.timeout,
        work_dir=work_dir,
    )


def run_bench_import(args: argparse.Namespace) -> int:
    """Run ``bulkflow bench import``; return the exit status.

    Returns 1 when a measured process failed or a server did not receive
    every item (the report says which), else 0.
    """
    from bulkflow._bench import _import_report
    from bulkflow._bench._cli import run_and_report
    from bulkflow._bench._import_run import run_import_plan

    def measure(work_dir: Path, progress: Callable[[str], None]) -> dict[str, Any]:
        plan = import_plan_from_args(args, work_dir)
        raw = run_import_plan(plan, progress)
        return _import_report.build_import_report(plan, raw)

    return run_and_report(
        args,
        measure,
        _import_report.print_import_report,
        _import_report.write_import_plot,
    )
