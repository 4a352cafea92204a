"""Faults of the service and the network: retried where safe, exact either way."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from bulkflow import (
    ExportConnector,
    RetryPolicy,
    ServerError,
    SQLiteSink,
    Timeouts,
    TransientApiError,
    export,
)
from bulkflow.emulator import (
    DEMO_CODE,
    DEMO_SECRET,
    CatalogStore,
    EmulatorConfig,
    open_emulator,
)
from bulkflow.emulator._faults import Fault, parse_fault
from bulkflow.export._parser import WHOLE_PAGE_BYTES
from bulkflow.testing import replica_tables

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)


async def run(
    store: CatalogStore,
    db: Path,
    faults: tuple[Fault, ...] = (),
    *,
    timeouts: Timeouts | None = None,
    bom: bool = False,
    whole_page_bytes: int = 0,
) -> tuple[int, int]:
    """Export Luma in pages of 300 through ``faults``; return (retries, pages)."""
    emulator = EmulatorConfig(round_pages=False, faults=faults, bom=bom)
    async with open_emulator(store, config=emulator) as url:
        sink = SQLiteSink(db)
        connector = ExportConnector(
            url=url, code=DEMO_CODE, secret=DEMO_SECRET, page_size=300
        )
        try:
            report = await export(
                connector,
                sink,
                retry=FAST,
                timeouts=timeouts,
                whole_page_bytes=whole_page_bytes,
            )
        finally:
            sink.close()
    return report.retries, report.pages


@pytest.mark.parametrize(
    "fault",
    [
        Fault("http_503", request=1),
        Fault("http_500", page=3),
        Fault("http_429", page=2, retry_after=0.05),
        Fault("api_error", page=2, code=14),
        Fault("api_error", page=1, code=11),
        Fault("api_error", page=4, code=10),
        Fault("reset", page=2),
        Fault("truncate", page=3),
        # On the first page, after the tables were created: the retry must
        # create them again (the rollback took them away).
        Fault("reset", page=1),
        Fault("truncate", page=1),
    ],
    ids=lambda fault: f"{fault.kind}-{fault.code if fault.kind == 'api_error' else ''}",
)
@pytest.mark.parametrize(
    "whole_page_bytes", [0, WHOLE_PAGE_BYTES], ids=["streamed", "whole"]
)
async def test_a_transient_fault_is_retried_and_the_replica_is_exact(
    luma_store: CatalogStore, tmp_path: Path, fault: Fault, whole_page_bytes: int
) -> None:
    """One fault costs one retry; the replica equals one made without faults.

    Either way of reading a page: streamed, or whole when it is small.
    """
    reference = tmp_path / "reference.sqlite"
    await run(luma_store, reference)
    db = tmp_path / "faulty.sqlite"

    retries, pages = await run(
        luma_store, db, (fault,), whole_page_bytes=whole_page_bytes
    )

    assert retries == 1
    assert pages == -(-2070 // 300)
    assert replica_tables(db) == replica_tables(reference)


async def test_retry_after_sets_the_least_delay(
    luma_store: CatalogStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 429's Retry-After is the least wait before the next try."""
    caplog.set_level(logging.WARNING, logger="bulkflow")
    fault = Fault("http_429", request=1, retry_after=0.3)

    await run(luma_store, tmp_path / "r.sqlite", (fault,))

    delays = [
        float(found.group(1))
        for record in caplog.records
        if (found := re.search(r"delay=([0-9.]+)s", record.getMessage()))
    ]
    assert delays and delays[0] >= 0.3


async def test_a_slow_body_times_out_and_is_fetched_again(
    luma_store: CatalogStore, tmp_path: Path
) -> None:
    """A body that stalls past the read timeout is a RequestTimeout, then a retry."""
    fault = Fault("slow", page=2, delay=1.0)
    timeouts = Timeouts(connect=5, read=0.3)

    retries, _ = await run(
        luma_store, tmp_path / "r.sqlite", (fault,), timeouts=timeouts
    )

    assert retries == 1


async def test_persistent_server_errors_give_up_and_keep_committed_pages(
    luma_store: CatalogStore, tmp_path: Path
) -> None:
    """Past the retry budget the error is raised; pages before it stay."""
    db = tmp_path / "r.sqlite"
    with pytest.raises(ServerError, match="HTTP 503"):
        await run(luma_store, db, (Fault("http_503", page=3, times=100),))

    sink = SQLiteSink(db)
    checkpoint = sink.load_checkpoint(DEMO_CODE)
    sink.close()
    rows = sum(len(table) for table in replica_tables(db).values())
    assert checkpoint.pages_done == 2 and checkpoint.cursor is None
    assert rows == 600


async def test_persistent_api_error_names_the_code(
    luma_store: CatalogStore, tmp_path: Path
) -> None:
    """Error 14 that never clears ends in a TransientApiError naming it."""
    fault = Fault("api_error", page=1, code=14, times=100)
    with pytest.raises(TransientApiError, match=r"API error 14 \(Updating data"):
        await run(luma_store, tmp_path / "r.sqlite", (fault,))


async def test_a_bom_before_every_page_is_accepted(
    luma_store: CatalogStore, tmp_path: Path
) -> None:
    """Pages that start with a UTF-8 BOM export like any other."""
    reference = tmp_path / "reference.sqlite"
    await run(luma_store, reference)

    await run(luma_store, tmp_path / "bom.sqlite", bom=True)

    assert replica_tables(tmp_path / "bom.sqlite") == replica_tables(reference)


def test_fault_specs_read_from_the_command_line() -> None:
    """--fault KIND:page=N:times=N:code=N parses into a Fault; bad ones are named."""
    assert parse_fault("api_error:page=2:code=14:times=3") == Fault(
        "api_error", page=2, code=14, times=3
    )
    with pytest.raises(Exception, match="kind must be one of"):
        parse_fault("meteor")
    with pytest.raises(Exception, match="unknown option 'when'"):
        parse_fault("reset:when=2")
