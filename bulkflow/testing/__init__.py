"""Helpers for testing bulkflow and code built on it."""

from bulkflow.testing._differential import (
    DifferentialPlan as DifferentialPlan,
    DifferentialResult as DifferentialResult,
    replica_tables as replica_tables,
    run_differential as run_differential,
)

__all__ = [
    "DifferentialPlan",
    "DifferentialResult",
    "replica_tables",
    "run_differential",
]
