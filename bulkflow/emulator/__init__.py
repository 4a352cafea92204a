"""A local, faithful Sales Layer 1.18 server for tests, demos and benchmarks."""

from bulkflow.emulator._catalogs import (
    DEMO_CODE as DEMO_CODE,
    DEMO_SECRET as DEMO_SECRET,
    catalog_source as catalog_source,
)
from bulkflow.emulator._server import (
    Emulator as Emulator,
    EmulatorConfig as EmulatorConfig,
    open_emulator as open_emulator,
    serve_emulator as serve_emulator,
)
from bulkflow.emulator._source import (
    CatalogSource as CatalogSource,
    SourceRow as SourceRow,
)
from bulkflow.emulator._store import (
    CatalogStore as CatalogStore,
    Connector as Connector,
)

__all__ = [
    "DEMO_CODE",
    "DEMO_SECRET",
    "CatalogSource",
    "CatalogStore",
    "Connector",
    "Emulator",
    "EmulatorConfig",
    "SourceRow",
    "catalog_source",
    "open_emulator",
    "serve_emulator",
]
