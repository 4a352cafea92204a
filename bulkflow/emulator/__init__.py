"""A local, faithful Sales Layer 1.18 server for tests, demos and benchmarks."""

from bulkflow.emulator._catalogs import (
    DEMO_CODE as DEMO_CODE,
)
from bulkflow.emulator._catalogs import (
    DEMO_SECRET as DEMO_SECRET,
)
from bulkflow.emulator._catalogs import (
    catalog_source as catalog_source,
)
from bulkflow.emulator._server import (
    Emulator as Emulator,
)
from bulkflow.emulator._server import (
    EmulatorConfig as EmulatorConfig,
)
from bulkflow.emulator._server import (
    open_emulator as open_emulator,
)
from bulkflow.emulator._server import (
    serve_emulator as serve_emulator,
)
from bulkflow.emulator._source import (
    CatalogSource as CatalogSource,
)
from bulkflow.emulator._source import (
    SourceRow as SourceRow,
)
from bulkflow.emulator._store import (
    CatalogStore as CatalogStore,
)
from bulkflow.emulator._store import (
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
