"""bulkflow: stream catalog data out of and into connector-style bulk APIs.

The reference API is Sales Layer 1.18. The library reads export connectors
page by page into a sink (SQLite by default) in bounded memory, commits each
page with its checkpoint, and runs incrementally from a stored cursor.
"""

from bulkflow._exceptions import (
    ApiError as ApiError,
    ApiRateLimited as ApiRateLimited,
    AuthenticationError as AuthenticationError,
    BulkflowError as BulkflowError,
    ClockError as ClockError,
    ConnectionFailed as ConnectionFailed,
    DataError as DataError,
    IncompletePage as IncompletePage,
    PageParseError as PageParseError,
    RateLimited as RateLimited,
    RequestTimeout as RequestTimeout,
    RowDecodeError as RowDecodeError,
    ServerError as ServerError,
    SinkError as SinkError,
    StateError as StateError,
    TransientApiError as TransientApiError,
    TransientError as TransientError,
    TransportError as TransportError,
    UnsafeURL as UnsafeURL,
    UsageError as UsageError,
)
from bulkflow._http import RetryPolicy as RetryPolicy, Timeouts as Timeouts
from bulkflow.export import (
    ExportConnector as ExportConnector,
    ExportRun as ExportRun,
    RunReport as RunReport,
    export as export,
)
from bulkflow.sinks import (
    Checkpoint as Checkpoint,
    Sink as Sink,
    SQLiteSink as SQLiteSink,
    open_sink as open_sink,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "ApiError",
    "ApiRateLimited",
    "AuthenticationError",
    "BulkflowError",
    "Checkpoint",
    "ClockError",
    "ConnectionFailed",
    "DataError",
    "ExportConnector",
    "ExportRun",
    "IncompletePage",
    "PageParseError",
    "RateLimited",
    "RequestTimeout",
    "RetryPolicy",
    "RowDecodeError",
    "RunReport",
    "SQLiteSink",
    "ServerError",
    "Sink",
    "SinkError",
    "StateError",
    "Timeouts",
    "TransientApiError",
    "TransientError",
    "TransportError",
    "UnsafeURL",
    "UsageError",
    "export",
    "export_sync",
    "open_sink",
]


def export_sync(connector: ExportConnector, sink: Sink) -> RunReport:
    """Run :func:`export` from synchronous code (a plain wrapper over anyio.run).

    Raises:
        the same as :func:`export`.
    """
    import anyio

    return anyio.run(export, connector, sink)
