"""Destinations of export runs: where pages of changes land with their checkpoints."""

from bulkflow.sinks._base import (
    Checkpoint as Checkpoint,
    PageStats as PageStats,
    Sink as Sink,
)
from bulkflow.sinks._sqlite import SQLiteSink as SQLiteSink, quote as quote

__all__ = ["Checkpoint", "PageStats", "SQLiteSink", "Sink", "quote", "open_sink"]


def open_sink(target: str) -> Sink:
    """Open the sink a URL names; today ``sqlite:///PATH``.

    Raises:
        UsageError: for any other form.
    """
    from bulkflow._exceptions import UsageError

    prefix = "sqlite:///"
    if target.startswith(prefix) and len(target) > len(prefix):
        return SQLiteSink(target[len(prefix) :])
    raise UsageError(
        f"--into {target!r} is not a destination bulkflow knows; "
        "use sqlite:///PATH (a relative PATH) or sqlite:////abs/path"
    )
