"""Reading export connectors: the page loop, the streaming parser, the run."""

from bulkflow.export._parser import (
    HeaderValue as HeaderValue,
    PageParser as PageParser,
    RowChunk as RowChunk,
)
from bulkflow.export._run import (
    ExportConnector as ExportConnector,
    ExportRun as ExportRun,
    RunReport as RunReport,
    export as export,
)

__all__ = [
    "ExportConnector",
    "ExportRun",
    "HeaderValue",
    "PageParser",
    "RowChunk",
    "RunReport",
    "export",
]
