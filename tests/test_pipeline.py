"""Collector settings during runs: raised while any run is active, then restored."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bulkflow.pipeline import gc_tuned
from bulkflow.pipeline._gc import RUN_THRESHOLD


@pytest.fixture
def threshold() -> Iterator[tuple[int, int, int]]:
    """A known starting threshold, restored after the test."""
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield gc.get_threshold()
    gc.set_threshold(*saved)


def test_threshold_is_raised_during_a_run_and_restored(
    threshold: tuple[int, int, int],
) -> None:
    """Inside the block the first threshold is RUN_THRESHOLD; after it, the old one."""
    with gc_tuned():
        inside = gc.get_threshold()
    assert inside == (RUN_THRESHOLD, 10, 10)
    assert gc.get_threshold() == threshold


def test_nested_runs_restore_only_when_the_last_ends(
    threshold: tuple[int, int, int],
) -> None:
    """Two overlapping runs: the settings come back when both have ended."""
    with gc_tuned():
        with gc_tuned():
            pass
        between = gc.get_threshold()
    assert between[0] == RUN_THRESHOLD
    assert gc.get_threshold() == threshold


def test_disabled_tuning_leaves_the_collector_alone(
    threshold: tuple[int, int, int],
) -> None:
    """tune_gc=False changes nothing."""
    with gc_tuned(enabled=False):
        assert gc.get_threshold() == threshold


def test_an_error_in_the_block_still_restores(threshold: tuple[int, int, int]) -> None:
    """The settings come back even when the run fails."""
    with pytest.raises(RuntimeError), gc_tuned():
        raise RuntimeError("boom")
    assert gc.get_threshold() == threshold


def test_a_slow_ijson_backend_is_announced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the C backend, creating a run warns loudly, naming the fix."""
    import ijson

    from bulkflow import ExportConnector, ExportRun, SQLiteSink

    monkeypatch.setattr(ijson, "backend", "python")
    sink = SQLiteSink(":memory:")
    connector = ExportConnector(url="http://127.0.0.1:9/", code="C", secret="s")
    with pytest.warns(RuntimeWarning, match="'python' backend.*15-20 times slower"):
        ExportRun(connector, sink)
    sink.close()


def test_the_cause_of_a_failed_group_is_found() -> None:
    """A bulkflow error wins over the broken channel and cancellation it caused."""
    import anyio

    from bulkflow import SinkError
    from bulkflow.pipeline import first_error

    cause = SinkError("disk full")
    group = BaseExceptionGroup(
        "tasks",
        [anyio.BrokenResourceError(), BaseExceptionGroup("inner", [cause])],
    )
    assert first_error(group) is cause
    plain = ValueError("x")
    assert (
        first_error(BaseExceptionGroup("g", [anyio.BrokenResourceError(), plain]))
        is plain
    )
