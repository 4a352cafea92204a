"""Reading export connectors: the page loop, the streaming parser, the run."""

from bulkflow.export._connector import ExportConnector as ExportConnector
from bulkflow.export._parser import (
    HeaderValue as HeaderValue,
    PageParser as PageParser,
    RowChunk as RowChunk,
)
from bulkflow.export._report import RunReport as RunReport
from bulkflow.export._run import ExportRun as ExportRun, export as export

__all__ = [
    "ExportConnector",
    "ExportRun",
    "HeaderValue",
    "PageParser",
    "RowChunk",
    "RunReport",
    "export",
]
