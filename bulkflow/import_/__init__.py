"""Writing import connectors: sources, batches, the rate budget, the ledger, the run."""

from bulkflow.import_._batch import (
    MAX_ITEMS_PER_CALL as MAX_ITEMS_PER_CALL,
    Batch as Batch,
    Batcher as Batcher,
)
from bulkflow.import_._ledger import Ledger as Ledger
from bulkflow.import_._limits import (
    Clock as Clock,
    RateBudget as RateBudget,
    RateStatistics as RateStatistics,
    SystemClock as SystemClock,
    parse_rate as parse_rate,
)
from bulkflow.import_._outcome import (
    InputOutcome as InputOutcome,
    parse_input_response as parse_input_response,
)
from bulkflow.import_._replica import SqliteSource as SqliteSource
from bulkflow.import_._report import ImportReport as ImportReport
from bulkflow.import_._run import (
    ImportRun as ImportRun,
    RunStatistics as RunStatistics,
    import_items as import_items,
)
from bulkflow.import_._sources import (
    CsvSource as CsvSource,
    ImportItem as ImportItem,
    IterableSource as IterableSource,
    JsonlSource as JsonlSource,
    Source as Source,
    open_source as open_source,
)
from bulkflow.import_._submit import (
    ImportConnector as ImportConnector,
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
