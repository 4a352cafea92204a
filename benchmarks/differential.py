"""The long differential check of incremental sync (issue: exact sync).

Runs hundreds of seeded churn rounds with incremental exports of two
connectors into one replica, kills dozens of those exports with SIGKILL at
random moments (half of them after a few committed pages), lets some killed
runs wait past their next_page token's lifetime so that they must restart,
and finally compares the replica, table by table and value by value, with a
fresh full export. Prints one summary line per plan and exits 1 on any lost,
duplicated or differing row.

    python benchmarks/differential.py --rounds 300 --seed 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bulkflow.testing import DifferentialPlan, run_differential

#: Churn per round for long runs: deletions and hidden categories (which hide
#: everything below them) at the default rates empty the catalog within a
#: hundred rounds, and a comparison of an empty replica proves little.
UPDATE, DELETE, HIDE, ADD = 0.05, 0.005, 0.01, 0.02

#: Fewer rows than this in the fresh export make the comparison vacuous.
MIN_ROWS_COMPARED = 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300, help="churn rounds in all")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--catalog", default="synthetic:600")
    parser.add_argument("--page-size", type=int, default=5)
    parser.add_argument(
        "--whole-page-limit",
        type=int,
        default=None,
        help="passed to every export: 4194304 reads small pages whole "
        "(default: bulkflow's own, every page streams)",
    )
    args = parser.parse_args()

    # Two thirds of the rounds with long-lived tokens (resumes), one third
    # with one-second tokens and a pause after each kill (restarts).
    plans = [
        DifferentialPlan(
            catalog=args.catalog,
            seed=args.seed,
            rounds=args.rounds - args.rounds // 3,
            page_size=args.page_size,
            kill_probability=0.3,
            whole_page_limit=args.whole_page_limit,
            update=UPDATE,
            delete=DELETE,
            hide=HIDE,
            add=ADD,
        ),
        DifferentialPlan(
            catalog=args.catalog,
            seed=args.seed + 1,
            rounds=args.rounds // 3,
            page_size=args.page_size,
            kill_probability=0.3,
            token_ttl=1,
            pause_before_resume=2.2,
            whole_page_limit=args.whole_page_limit,
            update=UPDATE,
            delete=DELETE,
            hide=HIDE,
            add=ADD,
        ),
    ]
    failed = False
    for plan in plans:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="bulkflow-differential-") as work:
            result = run_differential(Path(work), plan)
        print(
            f"seed {plan.seed}, token ttl {plan.token_ttl}s: {result.summary()} "
            f"[{time.monotonic() - started:.0f} s]",
            flush=True,
        )
        if result.rows_compared < MIN_ROWS_COMPARED:
            print(
                f"  only {result.rows_compared} rows left to compare: too few to "
                "say anything; lower the churn or the rounds",
                flush=True,
            )
            failed = True
        failed = failed or not result.exact
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
