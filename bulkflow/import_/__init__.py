"""Writing import connectors: sources, batches, the rate budget, the ledger, the run."""

from bulkflow.import_._batch import (
    MAX_ITEMS_PER_CALL as MAX_ITEMS_PER_CALL,
)
from bulkflow.import_._batch import (
    Batch as Batch,
)
from bulkflow.import_._batch import (
    Batcher as Batcher,
)
from bulkflow.import_._ledger import Ledger as Ledger
from bulkflow.import_._limits import (
    Clock as Clock,
)
from bulkflow.import_._limits import (
    RateBudget as RateBudget,
)
from bulkflow.import_._limits import (
    RateStatistics as RateStatistics,
)
from bulkflow.import_._limits import (
    SystemClock as SystemClock,
)
from bulkflow.import_._limits import (
    parse_rate as parse_rate,
)
from bulkflow.import_._outcome import (
    InputOutcome as InputOutcome,
)
from bulkflow.import_._outcome import (
    parse_input_response as parse_input_response,
)
from bulkflow.import_._replica import SqliteSource as SqliteSource
from bulkflow.import_._report import ImportReport as ImportReport
from bulkflow.import_._run import (
    ImportRun as ImportRun,
)
from bulkflow.import_._run import (
    RunStatistics as RunStatistics,
)
from bulkflow.import_._run import (
    import_items as import_items,
)
from bulkflow.import_._sources import (
    CsvSource as CsvSource,
)
from bulkflow.import_._sources import (
    ImportItem as ImportItem,
)
from bulkflow.import_._sources import (
    IterableSource as IterableSource,
)
from bulkflow.import_._sources import (
    JsonlSource as JsonlSource,
)
from bulkflow.import_._sources import (
    Source as Source,
)
from bulkflow.import_._sources import (
    open_source as open_source,
)
from bulkflow.import_._submit import (
    ImportConnector as ImportConnector,
)
from bulkflow.import_._submit import (
    ImportOptions as ImportOptions,
)

__all__ = [
    "MAX_ITEMS_PER_CALL",
    "Batch",
    "Batcher",
    "Clock",
    "CsvSource",
    "ImportConnector",
    "ImportItem",
    "ImportOptions",
    "ImportReport",
    "ImportRun",
    "InputOutcome",
    "IterableSource",
    "JsonlSource",
    "Ledger",
    "RateBudget",
    "RateStatistics",
    "RunStatistics",
    "Source",
    "SqliteSource",
    "SystemClock",
    "import_items",
    "open_source",
    "parse_input_response",
    "parse_rate",
]
