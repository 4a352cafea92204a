"""The one exception tree of bulkflow.

::

    BulkflowError
    ├── UsageError              bad arguments or configuration; fix the call
    ├── TransientError          mixin: worth retrying after a back-off
    ├── TransportError          the connection, the HTTP layer
    │   ├── ConnectionFailed    (transient) refused, reset, DNS
    │   ├── RequestTimeout      (transient) no answer in time
    │   ├── ServerError         (transient) HTTP 5xx
    │   ├── RateLimited         (transient) HTTP 429 or API error 10
    │   └── UnsafeURL           next_page or tracking URL off the connector's host
    ├── ApiError                an ``error`` code in the response body
    │   ├── ApiRateLimited      (transient) code 10, also a RateLimited
    │   ├── TransientApiError   (transient) codes 11 and 14
    │   ├── AuthenticationError codes 2, 3, 4, 9
    │   └── ClockError          codes 12 and 13: re-signing did not help
    ├── DataError               the feed itself is wrong; retrying will not help
    │   ├── PageParseError      not JSON, wrong shape
    │   │   └── IncompletePage  (transient) the body stopped before the page did
    │   └── RowDecodeError      a row that does not fit its table's schema
    ├── SinkError               the destination refused a write
    └── StateError              a checkpoint or cursor that cannot be used

The module imports nothing of bulkflow, so every layer, ``protocol`` included,
may raise from it. Data errors carry their evidence as attributes (where, what
value) so that callers can act on them without parsing messages.
"""

from __future__ import annotations

from typing import Any

#: Offending values are shown shortened to this many characters.
MAX_SHOWN_CHARS = 200


def shorten(value: Any, limit: int = MAX_SHOWN_CHARS) -> str:
    """Return ``repr(value)`` cut to ``limit`` characters, marking the cut."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return text[: limit - 3] + "..."


class BulkflowError(Exception):
    """Root of every error bulkflow raises on purpose."""


class UsageError(BulkflowError):
    """The call or the configuration is wrong; the message says which option."""


class TransientError(BulkflowError):
    """A failure that may go away: the caller may retry after a back-off.

    Attributes:
        retry_after: seconds the server asked us to wait, when it said so.
    """

    retry_after: float | None = None


class TransportError(BulkflowError):
    """The request did not produce a usable HTTP response."""


class ConnectionFailed(TransportError, TransientError):
    """The connection was refused, reset or dropped mid-body."""


class RequestTimeout(TransportError, TransientError):
    """No answer, or no progress in the body, within the timeout."""


class ServerError(TransportError, TransientError):
    """The server answered with an HTTP 5xx status."""


class RateLimited(TransportError, TransientError):
    """The server asked us to slow down (HTTP 429 or API error 10)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnsafeURL(TransportError):
    """A URL from the feed points away from the connector's host."""


class ApiError(BulkflowError):
    """The API answered with a non-zero ``error`` code in its body.

    Attributes:
        code: the API error code (``saleslayer-1.18.md`` §5).
    """

    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.code = code


class ApiRateLimited(RateLimited, ApiError):
    """API error 10: the connector's rate budget is used up for now."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        ApiError.__init__(self, message, code=10)
        self.retry_after = retry_after


class TransientApiError(ApiError, TransientError):
    """API errors 11 and 14: the service is busy or preparing data."""


class AuthenticationError(ApiError):
    """API errors 2, 3, 4 and 9: the code, the key or the secret is wrong."""


class ClockError(ApiError):
    """API errors 12 and 13 that re-signing did not cure: check the clock."""


class DataError(BulkflowError):
    """The feed is wrong in a way that retrying will not change.

    Attributes:
        where: the connector, page and table, in words.
        offset: the byte offset or row index, when known.
        value: the offending value, shortened.
    """

    def __init__(
        self,
        message: str,
        *,
        where: str = "",
        offset: int | None = None,
        value: Any = None,
    ) -> None:
        super().__init__(message)
        self.where = where
        self.offset = offset
        self.value = value


class PageParseError(DataError):
    """A page that is not valid JSON or not shaped like a 1.18 response."""


class IncompletePage(PageParseError, TransientError):
    """The body ended before the page did: a cut connection or a proxy; retry."""


class RowDecodeError(DataError):
    """A row that does not fit the ``data_schema`` of its table."""


class SinkError(BulkflowError):
    """The destination refused or failed a write; nothing of that page landed."""


class StateError(BulkflowError):
    """A stored checkpoint or cursor that cannot be used as it is."""
