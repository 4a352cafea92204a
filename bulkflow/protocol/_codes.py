"""The API's error codes (``saleslayer-1.18.md`` §5) and what a client does."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from bulkflow._exceptions import (
    ApiError,
    ApiRateLimited,
    AuthenticationError,
    ClockError,
    TransientApiError,
)


class Retry(Enum):
    """What a client does after an error code."""

    NEVER = "never"
    RESIGN_ONCE = "re-sign and retry once"
    BACK_OFF = "retry after a back-off"


@dataclass(frozen=True)
class ErrorCode:
    """One server error code: the SDK's text, the retry rule and the advice."""

    code: int
    text: str
    retry: Retry
    advice: str

    @property
    def transient(self) -> bool:
        """True when waiting and retrying can make the error go away."""
        return self.retry is Retry.BACK_OFF


_CODES = (
    ErrorCode(1, "Validation error", Retry.NEVER, "check the request parameters"),
    ErrorCode(2, "Invalid connector code", Retry.NEVER, "check --code"),
    ErrorCode(
        3, "Wrong unique key", Retry.RESIGN_ONCE, "a fresh `unique` is drawn per call"
    ),
    ErrorCode(
        4,
        "Invalid codification key",
        Retry.NEVER,
        "check the connector's secret (--secret-env)",
    ),
    ErrorCode(
        5,
        "Incorrect date of last_update",
        Retry.NEVER,
        "the service sends everything; the run becomes a refresh",
    ),
    ErrorCode(6, "API version nonexistent", Retry.NEVER, "send ver=1.17 or 1.18"),
    ErrorCode(7, "Wrong output mode", Retry.NEVER, "JSON is returned instead"),
    ErrorCode(8, "Invalid compression type", Retry.NEVER, "the body is uncompressed"),
    ErrorCode(
        9, "Invalid private key", Retry.NEVER, "check the connector's secret key"
    ),
    ErrorCode(
        10,
        "Service temporarily blocked",
        Retry.BACK_OFF,
        "the rate budget is exceeded; lower --rate",
    ),
    ErrorCode(11, "Service temporarily unavailable", Retry.BACK_OFF, "retry later"),
    ErrorCode(
        12,
        "Incorrect date-code",
        Retry.RESIGN_ONCE,
        "the request time is off; check this machine's clock",
    ),
    ErrorCode(
        13,
        "Date code has expired",
        Retry.RESIGN_ONCE,
        "the request time or the next_page token expired; check the clock",
    ),
    ErrorCode(14, "Updating data. Try later", Retry.BACK_OFF, "retry in a few minutes"),
)

ERROR_CODES: dict[int, ErrorCode] = {entry.code: entry for entry in _CODES}

#: Codes whose response still carries the data (the service only informs).
INFORMATIVE_CODES = frozenset({5, 7, 8})


def describe(code: int) -> ErrorCode:
    """Return the entry for ``code``; unknown codes are "API error", not retried."""
    return ERROR_CODES.get(code, ErrorCode(code, "API error", Retry.NEVER, ""))


def error_for(code: int, *, where: str, message: str | None = None) -> ApiError:
    """Build the bulkflow exception for a server error code.

    ``where`` names the connector and page, ``message`` is the server's
    ``error_message`` when it sent one.
    """
    entry = describe(code)
    text = f"{where}: API error {code} ({entry.text})"
    if message:
        text += f": {message}"
    if entry.advice:
        text += f"; {entry.advice}"
    if code == 10:
        return ApiRateLimited(text)
    if entry.transient:
        return TransientApiError(text, code=code)
    if code in (12, 13):
        return ClockError(text, code=code)
    if code in (2, 3, 4, 9):
        return AuthenticationError(text, code=code)
    return ApiError(text, code=code)
