"""Plumbing shared by the stages of a run: collector settings for now."""

from bulkflow.pipeline._gc import gc_tuned as gc_tuned

__all__ = ["gc_tuned"]
