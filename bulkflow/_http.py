"""HTTP for one run: an aiohttp session, timeouts, retry back-off, URL hygiene.

aiohttp's exceptions are translated here, at the boundary, into bulkflow's
tree; a message never carries a query string, because the first request of
a run carries its signature there and ``next_page`` URLs carry page tokens.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

import aiohttp

from bulkflow._exceptions import (
    ConnectionFailed,
    RateLimited,
    RequestTimeout,
    ServerError,
    TransportError,
    UnsafeURL,
)

#: Bytes asked of the socket per read while streaming a body.
READ_SIZE = 256 * 1024


def safe_url(url: str) -> str:
    """``url`` without its query and fragment: fit for messages and logs."""
    parts = urlsplit(url)
    suffix = "?…" if parts.query else ""
    # user:password@ never leaves: it is a secret like any other.
    netloc = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{netloc}{parts.path}{suffix}"


def same_origin(url: str, base: str) -> bool:
    """True when ``url`` has the scheme, host and port of ``base``."""
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def check_origin(url: str, base: str, *, what: str) -> None:
    """Refuse a URL from the feed that leaves the connector's host.

    Raises:
        UnsafeURL: naming both hosts.
    """
    if not same_origin(url, base):
        raise UnsafeURL(
            f"{what} {safe_url(url)} is not on the connector's host "
            f"{safe_url(base)}; bulkflow follows only URLs on that host"
        )


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed for each part of a request.

    ``read`` bounds the wait for the next bytes of a body, not the whole
    body: a 2 GB page that keeps arriving never times out.
    """

    connect: float = 30.0
    read: float = 120.0


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried: capped exponential back-off, full jitter.

    Attributes:
        max_attempts: tries of one request in all, the first included.
        base_delay: seconds before the first retry (before jitter).
        max_delay: the longest wait between two tries, in seconds.
    """

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 60.0

    def delay(
        self, attempt: int, retry_after: float | None, rng: random.Random
    ) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 0)."""
        ceiling = min(self.max_delay, self.base_delay * 2**attempt)
        wait = rng.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay * 10))
        return wait


def parse_retry_after(value: str | None) -> float | None:
    """Read ``Retry-After`` as seconds or as an HTTP date; ``None`` if neither."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ResponseStream:
    """The body of one response, read as it arrives."""

    def __init__(self, response: aiohttp.ClientResponse, url: str) -> None:
        self._response = response
        self._url = url
        self.bytes_read = 0

    @property
    def status(self) -> int:
        """The HTTP status code."""
        return self._response.status

    @property
    def content_length(self) -> int | None:
        """The body's length when the response declares it (not compressed)."""
        if self._response.headers.get("Content-Encoding", "identity") != "identity":
            return None
        return self._response.content_length

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Yield the body's bytes as they arrive.

        Raises:
            ConnectionFailed: the connection broke mid-body.
            RequestTimeout: no bytes arrived within the read timeout.
        """
        content = self._response.content
        try:
            while True:
                data = await content.read(READ_SIZE)
                if not data:
                    return
                self.bytes_read += len(data)
                yield data
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            raise ConnectionFailed(
                f"{safe_url(self._url)}: connection broke after "
                f"{self.bytes_read} bytes of the body ({type(exc).__name__})"
            ) from exc
        except TimeoutError as exc:
            raise RequestTimeout(
                f"{safe_url(self._url)}: no data for the read timeout after "
                f"{self.bytes_read} bytes"
            ) from exc


class HttpClient:
    """One aiohttp session, used for every request of a run.

    Use as ``async with HttpClient() as http``; the session closes on exit.
    """

    def __init__(
        self, *, timeouts: Timeouts | None = None, verify_tls: bool = True
    ) -> None:
        self.timeouts = timeouts or Timeouts()
        self._verify_tls = verify_tls
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpClient:
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self.timeouts.connect,
            sock_read=self.timeouts.read,
        )
        connector = aiohttp.TCPConnector(ssl=self._verify_tls)
        self._session = aiohttp.ClientSession(
            timeout=timeout, connector=connector, auto_decompress=True
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    @asynccontextmanager
    async def open_stream(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        data: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[ResponseStream]:
        """Send a request; yield its body as a stream once the status is 200.

        Raises:
            ConnectionFailed, RequestTimeout: transient transport failures.
            RateLimited: HTTP 429, with ``retry_after`` from ``Retry-After``.
            ServerError: HTTP 5xx.
            TransportError: any other status than 200.
        """
        assert self._session is not None, "use HttpClient in 'async with'"
        try:
            async with self._session.request(
                method, url, params=params, data=data, headers=headers
            ) as response:
                _raise_for_status(response, url)
                yield ResponseStream(response, url)
        except aiohttp.ClientSSLError as exc:
            raise TransportError(
                f"{safe_url(url)}: TLS failed ({type(exc).__name__}); check the "
                "URL's scheme (https against an http port?) and the certificate"
            ) from exc
        except aiohttp.ClientConnectionError as exc:
            raise ConnectionFailed(
                f"{safe_url(url)}: {type(exc).__name__}: cannot reach the server"
            ) from exc
        except TimeoutError as exc:
            raise RequestTimeout(
                f"{safe_url(url)}: no answer within {self.timeouts.read:g} s"
            ) from exc


def _raise_for_status(response: aiohttp.ClientResponse, url: str) -> None:
    status = response.status
    if status == 200:
        return
    where = f"{safe_url(url)}: HTTP {status}"
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise RateLimited(f"{where} (too many requests)", retry_after=retry_after)
    if status >= 500 and status not in (501, 505):
        # 501 and 505 say the server cannot do this at all: not worth a retry.
        error = ServerError(f"{where} (server error)")
        error.retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise error
    raise TransportError(f"{where}; the API answers 200 for everything it accepts")
