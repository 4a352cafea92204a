"""Sending one batch: a signed POST under the rate budget, repeated only when safe.

Why a POST may be sent again
----------------------------
An import call changes the catalog, so bulkflow sends one twice only where
that does no harm. Imports match items by ``REF`` (§4.1): an upsert sent a
second time finds the item the first one created and sets the same values
again; a deletion sent a second time finds nothing left to delete. Hence:

- No usable answer (connection refused or reset, timeout, HTTP 5xx, a body
  that is not an import answer): the batch may or may not have been applied.
  It is sent again after a back-off; if it was applied, the replay is a
  no-op.
- HTTP 429 or API error 10: the service refused to look at it. The shared
  budget slows down (honouring ``Retry-After``) and the batch waits for its
  turn again.
- API errors 11 and 14 (busy, preparing data): not applied; sent again after
  a back-off. Errors 3, 12 and 13 (signature, clock): re-signed and sent
  once more.
- An answer with ``result`` 2 or with per-item errors, and API error 1
  (validation): the service read the batch and said no. The same bytes get
  the same answer, so the batch is not sent again in this run; its refused
  items go to the rejects file, and the next run sends it again, once the
  data or the connector may have been fixed.
- API errors 2, 4 and 9 (code, key): no batch can succeed; the run stops.

A replay is harmless to its own items, but when one REF is in two batches
that are in flight together, the one applied last wins. With one batch in
flight (``concurrency=1``) a batch is retried before the next is sent, so
the source's order holds.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from bulkflow._exceptions import (
    ApiError,
    BulkflowError,
    PageParseError,
    RateLimited,
    TransientError,
    UsageError,
)
from bulkflow._http import HttpClient, RetryPolicy
from bulkflow.import_._batch import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_BATCH_BYTES,
    Batch,
    Encoding,
    encode_body,
)
from bulkflow.import_._limits import RateBudget, parse_rate
from bulkflow.import_._outcome import InputOutcome, parse_input_response, read_json
from bulkflow.protocol import API_VERSION, signed_params

logger = logging.getLogger("bulkflow.import")

#: Tries of one batch refused for rate (429, error 10) before the run gives up.
MAX_RATE_LIMITED_TRIES = 30


@dataclass(frozen=True)
class ImportConnector:
    """An import connector: where it is and how to sign for it.

    Attributes:
        url: the API endpoint, e.g. ``https://api.saleslayer.com/``.
        code: the import connector's code (not the export connector's).
        secret: its secret; never shown in reprs, logs or reports.
        params: extra query parameters sent with every call.
    """

    url: str
    code: str
    secret: str = field(repr=False)
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImportOptions:
    """How a run sends: budget, concurrency, batch bounds, encoding, tracking.

    Attributes:
        rate: ``"10/s"``, ``"300/min"``, a :class:`RateBudget` shared with
            other imports to the same host, or ``None`` for no limit.
        concurrency: batches in flight at once.
        batch_size: items per batch, at most 50,000 (the API's limit).
        max_batch_bytes: encoded bytes per batch, before gzip.
        encoding: ``form`` (PHP brackets, as the SDK sends) or ``json``.
        gzip: compress request bodies (``Content-Encoding: gzip``).
        direct: ask for ``input_data_directly=1`` (no queue, no tracking).
        affected_ids: ask for id↔reference pairs (``get_affected_ids=1``).
        retry: back-off for failures that a replay may cure.
        tracking_timeout: seconds to follow one batch's tracking URL.
        poll_interval: seconds between two polls of a tracking URL.
        max_tracking: batches whose tracking URL is followed at once; a
            batch waits for a free slot before it is sent, so this bounds
            the run's memory (a tracked batch keeps its items for rejects).

    Raises:
        UsageError: for a concurrency, size or encoding out of range.
    """

    rate: RateBudget | str | None = "10/s"
    concurrency: int = 4
    batch_size: int = DEFAULT_BATCH_SIZE
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    encoding: Encoding = "form"
    gzip: bool = False
    direct: bool = False
    affected_ids: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    tracking_timeout: float = 600.0
    max_tracking: int = 64
    poll_interval: float = 2.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise UsageError(f"--concurrency {self.concurrency}: give 1 or more")
        if self.encoding not in ("form", "json"):
            raise UsageError(f"encoding {self.encoding!r}: use 'form' or 'json'")
        if self.tracking_timeout <= 0 or self.poll_interval <= 0:
            raise UsageError("tracking_timeout and poll_interval must be positive")
        if isinstance(self.rate, str):
            parse_rate(self.rate)

    def flags(self) -> dict[str, str]:
        """The body parameters these options add to every call."""
        flags = {}
        if self.direct:
            flags["input_data_directly"] = "1"
        if self.affected_ids:
            flags["get_affected_ids"] = "1"
        return flags


@dataclass(frozen=True)
class Sent:
    """What became of one batch's POST.

    Attributes:
        outcome: the parsed answer, unless the batch was refused by an error.
        refusal: why the API refused the whole batch (API error 1).
        attempts: POSTs made for it, the first included.
    """

    batch: Batch
    outcome: InputOutcome | None
    refusal: str | None
    attempts: int


class Submitter:
    """Send batches of one connector; shared by every task of a run.

    Args:
        connector: where to send.
        http: the run's HTTP client.
        budget: the host's rate budget, or ``None`` for no limit.
        options: encoding, flags and the retry policy.
        on_request: called with ``time.monotonic()`` as each POST starts.
        on_retry: called once per retry, with the reason.
    """

    def __init__(
        self,
        connector: ImportConnector,
        http: HttpClient,
        *,
        budget: RateBudget | None,
        options: ImportOptions,
        on_request: Callable[[float], None],
        on_retry: Callable[[str], None],
    ) -> None:
        self.connector = connector
        self.http = http
        self.budget = budget
        self.retry = options.retry
        self.options = options
        self._on_request = on_request
        self._on_retry = on_retry
        self._rng = random.Random()

    def __repr__(self) -> str:
        return f"<Submitter {self.connector.code} budget={self.budget!r}>"

    async def send(self, batch: Batch) -> Sent:
        """POST ``batch`` until it is answered, retrying only where it is safe.

        Raises:
            ApiError: codes 2, 4 and 9 (no batch can succeed), or a signature
                or clock error that re-signing did not cure.
            TransientError, PageParseError: when the tries are used up.

        Cancelled, it stops waiting; the batch may or may not have been
        applied, and the ledger leaves it to be sent again.
        """
        where = f"connector {self.connector.code}, batch {batch.number}"
        raw = batch.body(self.options.flags())
        body, headers = encode_body(
            raw, encoding=self.options.encoding, compress=self.options.gzip
        )

        # Each kind of failure says whether the batch may go again (see the
        # module's docstring); rate refusals have a budget of their own.
        failures = rate_limited = 0
        resigned = False
        while True:
            try:
                answer = await self._post(body, headers, where)
                outcome = parse_input_response(answer, where=where)
                return Sent(batch, outcome, None, failures + rate_limited + 1)
            except RateLimited as exc:
                rate_limited += 1
                if rate_limited >= MAX_RATE_LIMITED_TRIES:
                    raise
                await self._slow_down(exc, where)
            except (TransientError, PageParseError) as exc:
                failures += 1
                if failures >= self.retry.max_attempts:
                    raise
                await self._back_off(exc, failures - 1, where)
            except ApiError as exc:
                if exc.code in (3, 12, 13) and not resigned:
                    resigned = True
                    self._warn(where, "re-signing", 0.0, exc)
                    continue
                if exc.code == 1:
                    return Sent(batch, None, str(exc), failures + rate_limited + 1)
                raise

    async def _post(
        self, body: bytes, headers: dict[str, str], where: str
    ) -> dict[str, object]:
        if self.budget is not None:
            await self.budget.acquire()
        self._on_request(time.monotonic())

        signature = signed_params(
            self.connector.code, self.connector.secret, time=int(time.time())
        )
        params = {**signature, "ver": API_VERSION, **self.connector.params}

        logger.debug("batch.started %s bytes=%d", where, len(body))
        return await read_json(
            self.http,
            "POST",
            self.connector.url,
            where=where,
            params=params,
            data=body,
            headers=headers,
        )

    async def _slow_down(self, exc: RateLimited, where: str) -> None:
        if self.budget is not None:
            self.budget.slow_down(exc.retry_after)
            self._warn(where, "slowing down", exc.retry_after or 0.0, exc)
            return
        # Without a budget there is nobody to slow down: wait as asked.
        delay = self.retry.delay(0, exc.retry_after, self._rng)
        self._warn(where, "waiting", delay, exc)
        await anyio.sleep(delay)

    async def _back_off(self, exc: BulkflowError, attempt: int, where: str) -> None:
        delay = self.retry.delay(attempt, getattr(exc, "retry_after", None), self._rng)
        self._warn(where, "sending again", delay, exc)
        await anyio.sleep(delay)

    def _warn(self, where: str, action: str, delay: float, exc: BaseException) -> None:
        self._on_retry(str(exc))
        logger.warning(
            "batch.retry %s action=%r delay=%.2fs reason=%s", where, action, delay, exc
        )
