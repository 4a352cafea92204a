"""Shared fixtures: the anyio backend, emulators on 127.0.0.1, temporary sinks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bulkflow.emulator import (
    DEMO_CODE,
    DEMO_SECRET,
    CatalogSource,
    CatalogStore,
    EmulatorConfig,
    catalog_source,
    open_emulator,
)

LUMA_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "magento-luma"


@pytest.fixture
def anyio_backend() -> str:
    """aiohttp runs on asyncio only."""
    return "asyncio"


@pytest.fixture(scope="session")
def luma_source() -> CatalogSource:
    """The Luma catalog as the emulator loads it (read once per session)."""
    return catalog_source("luma")


@pytest.fixture
def luma_store(luma_source: CatalogSource) -> Iterator[CatalogStore]:
    """An in-memory emulator store holding the Luma catalog and the demo connector."""
    store = CatalogStore.open(None)
    store.load(luma_source)
    store.put_connector(DEMO_CODE, DEMO_SECRET, kind="export", options={})
    yield store
    store.close()


@pytest.fixture
async def luma_url(luma_store: CatalogStore) -> AsyncIterator[str]:
    """The URL of an emulator serving Luma, pages not rounded (so 1 or 7 rows)."""
    config = EmulatorConfig(round_pages=False)
    async with open_emulator(luma_store, config=config) as url:
        yield url
