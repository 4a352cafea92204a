"""Plumbing shared by the stages of a run: collector settings, task groups."""

from bulkflow.pipeline._gc import gc_tuned as gc_tuned
from bulkflow.pipeline._groups import first_error as first_error

__all__ = ["first_error", "gc_tuned"]
