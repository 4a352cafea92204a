"""What the API answered to an import call: counts, refused items, tracking.

The client reads every shape that §4.3 and §9 list: ``result`` 0, 1 or 2
(docs: nothing changed, applied, refused); ``errors`` or ``error``, a string
or a list; ``items_affected`` as a map of table to count or as a total;
``new_items``, ``updated_items`` and ``deleted_items`` as counts, maps of
table to count, or id↔reference pairs. Per-item errors are tied back to
their items through the ``input_data[table][index]`` path the emulator puts
in each message, or else through a quoted ``REF`` that names exactly one item
of the batch; an error that names neither is kept without an item.

Over 400 lines: every shape of ``input_response`` that §4.3 and §9 allow.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from bulkflow._exceptions import (
    BulkflowError,
    PageParseError,
    TransientError,
    UsageError,
    shorten,
)
from bulkflow._http import HttpClient, check_origin, safe_url
from bulkflow.import_._batch import Batch
from bulkflow.import_._limits import Clock
from bulkflow.import_._sources import DELETE_FIELD, ImportItem
from bulkflow.protocol import error_for

#: The largest import answer read (id↔ref pairs of 50,000 items fit easily).
MAX_RESPONSE_BYTES = 64 * 1024 * 1024

Status = Literal["accepted", "partial", "refused"]

_PATH = re.compile(r"(input_data|delete_data)\[([^\]]+)\]\[(\d+)\]")
_QUOTED = re.compile(r"'([^']+)'|\"([^\"]+)\"")


@dataclass(frozen=True)
class InputOutcome:
    """An ``input_response``, read whatever its shape.

    Attributes:
        result: 0 nothing changed, 1 applied, 2 refused; ``None`` if absent.
        errors: the error messages, in order.
        affected: items affected in all, when the answer says.
        affected_by_table: items affected per table, when given as a map.
        new, updated, deleted: counts (pairs are counted).
        pairs: the id↔reference pairs per kind (``new`` …), when sent.
        tracking_url: the ``status_tracking`` URL, if any.
    """

    result: int | None = None
    errors: tuple[str, ...] = ()
    affected: int | None = None
    affected_by_table: dict[str, int] = field(default_factory=dict)
    new: int = 0
    updated: int = 0
    deleted: int = 0
    pairs: dict[str, list[Any]] = field(default_factory=dict)
    tracking_url: str | None = None

    @property
    def status(self) -> Status:
        """``refused`` (result 2), ``partial`` (errors) or ``accepted``."""
        if self.result == 2:
            return "refused"
        return "partial" if self.errors else "accepted"


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _errors(response: Mapping[str, Any]) -> tuple[str, ...]:
    raw = response.get("errors")
    if raw is None and not isinstance(response.get("error"), int | float):
        raw = response.get("error")
    if raw in (None, "", [], {}):
        return ()
    if isinstance(raw, Mapping):
        raw = [f"{key}: {value}" for key, value in raw.items()]
    if not isinstance(raw, list):
        raw = [raw]
    return tuple(
        member if isinstance(member, str) else orjson.dumps(member).decode()
        for member in raw
    )


def _count(value: Any) -> tuple[int, list[Any]]:
    """A count and its pairs from a number, a map or a list of pairs.

    A map whose values are all numbers is read as table → count; any other
    map or list as id↔reference pairs.
    """
    number = _int(value)
    if number is not None:
        return number, []
    if isinstance(value, Mapping):
        counts = [_int(member) for member in value.values()]
        if all(count is not None for count in counts):
            return sum(count or 0 for count in counts), []
        pairs: list[Any] = []
        for member in value.values():
            pairs.extend(member if isinstance(member, list) else [member])
        return len(pairs), pairs
    if isinstance(value, list):
        return len(value), list(value)
    return 0, []


def parse_input_response(body: Mapping[str, Any], *, where: str) -> InputOutcome:
    """Read an import answer, 1.18 (``input_response`` inside) or 1.17 (flat).

    Raises:
        PageParseError: when the answer holds no import response at all.
    """
    response = body.get("input_response")
    if not isinstance(response, Mapping) and ("data_schema" in body or "data" in body):
        raise UsageError(
            f"{where}: the connector answered with an export page: it is an "
            "export connector; give an import connector's --code"
        )
    if not isinstance(response, Mapping):
        keys = ("result", "errors", "items_affected", "new_items", "updated_items")
        if not any(key in body for key in keys):
            raise PageParseError(
                f"{where}: the answer has no input_response: {shorten(dict(body))}",
                where=where,
                value=dict(body),
            )
        response = body

    affected_raw = response.get("items_affected")
    by_table: dict[str, int] = {}
    if isinstance(affected_raw, Mapping):
        by_table = {str(k): _int(v) or 0 for k, v in affected_raw.items()}
    affected = sum(by_table.values()) if by_table else _int(affected_raw)
    counts = {
        kind: _count(response.get(f"{kind}_items"))
        for kind in ("new", "updated", "deleted")
    }

    tracking = response.get("status_tracking") or body.get("status_tracking")
    return InputOutcome(
        result=_int(response.get("result")),
        errors=_errors(response),
        affected=affected,
        affected_by_table=by_table,
        new=counts["new"][0],
        updated=counts["updated"][0],
        deleted=counts["deleted"][0],
        pairs={kind: pairs for kind, (_, pairs) in counts.items() if pairs},
        tracking_url=str(tracking) if tracking else None,
    )


# -- rejects ------------------------------------------------------------------


@dataclass(frozen=True)
class Reject:
    """An item the API refused (or an error it did not tie to an item)."""

    table: str | None
    item: dict[str, Any] | None
    reason: str
    where: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The rejects-file line: item, table, reason and the item's source."""
        return {
            "table": self.table,
            "item": self.item,
            "reason": self.reason,
            "source": self.where or None,
        }


def _reject(item: ImportItem, reason: str) -> Reject:
    fields = dict(item.fields)
    if item.delete:
        fields[DELETE_FIELD] = True
    return Reject(item.table, fields, reason, item.where)


def attribute(batch: Batch, message: str) -> ImportItem | None:
    """The item of ``batch`` an error message is about, if it names one."""
    match = _PATH.search(message)
    if match:
        return batch.locate(match.group(1), match.group(2), int(match.group(3)))
    quoted = {a or b for a, b in _QUOTED.findall(message)}
    named = [item for item in batch.items if str(item.ref) in quoted]
    return named[0] if len(named) == 1 else None


def rejects_for(batch: Batch, outcome: InputOutcome) -> list[Reject]:
    """The rejects of one answered batch: per-item errors, or all on refusal.

    When the whole batch is refused, errors that name no item become the
    reason of every item they did not name, instead of lines of their own.
    """
    rejects: list[Reject] = []
    blamed: set[int] = set()
    loose: list[str] = []
    for message in outcome.errors:
        item = attribute(batch, message)
        if item is None:
            loose.append(message)
            continue
        blamed.add(id(item))
        rejects.append(_reject(item, message))
    if outcome.status != "refused":
        return rejects + [Reject(None, None, message) for message in loose]
    reason = "; ".join(loose or outcome.errors) or "the API refused it (result 2)"
    reason = f"refused with its batch: {_clip(reason, 500)}"
    rejects.extend(
        _reject(item, reason) for item in batch.items if id(item) not in blamed
    )
    return rejects


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def rejects_all(batch: Batch, reason: str) -> list[Reject]:
    """Every item of a batch that the API refused as a whole."""
    return [_reject(item, reason) for item in batch.items]


class RejectsFile:
    """The rejects of a run, one JSON object per line: item, table, reason.

    The file is truncated when opened: a run writes the rejects of every
    batch it sends, and batches skipped through the ledger had none.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.count = 0
        self._handle: IO[bytes] | None = self.path.open("wb")

    def __repr__(self) -> str:
        return f"<RejectsFile {str(self.path)!r} count={self.count}>"

    def write(self, rejects: list[Reject]) -> None:
        """Append ``rejects`` and flush, so that a killed run keeps them."""
        if not rejects or self._handle is None:
            return
        lines = b"".join(
            orjson.dumps(reject.as_dict(), default=str) + b"\n" for reject in rejects
        )
        self._handle.write(lines)
        self._handle.flush()
        self.count += sum(1 for reject in rejects if reject.item is not None)

    def close(self) -> None:
        """Close the file."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


# -- reading answers and tracking -----------------------------------------------


async def read_json(
    http: HttpClient,
    method: str,
    url: str,
    *,
    where: str,
    params: Mapping[str, str] | None = None,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Send a request and return its JSON object; raise the API's error code.

    Raises:
        PageParseError: the answer is not a JSON object (or is too large).
        ApiError: the answer carries a non-zero ``error``.
        TransportError: from the HTTP layer.
    """
    async with http.open_stream(
        method, url, params=params, data=data, headers=headers
    ) as stream:
        text = await _read_all(stream.aiter_bytes(), where)
    body = _json_object(text.removeprefix(b"\xef\xbb\xbf"), where)

    code = _int(body.get("error"))
    if code:
        message = str(body.get("error_message") or "")
        raise error_for(code, where=where, message=message)
    return body


async def _read_all(chunks: AsyncIterator[bytes], where: str) -> bytes:
    """A whole answer, refused past :data:`MAX_RESPONSE_BYTES`."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise PageParseError(
                f"{where}: the answer passed {MAX_RESPONSE_BYTES:,} bytes",
                where=where,
            )
        parts.append(chunk)
    return b"".join(parts)


def _json_object(text: bytes, where: str) -> dict[str, Any]:
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise PageParseError(
            f"{where}: the answer is not JSON: {shorten(text[:300])}",
            where=where,
            value=text[:300],
        ) from exc
    if not isinstance(body, dict):
        raise PageParseError(
            f"{where}: the answer is not a JSON object: {shorten(body)}",
            where=where,
            value=body,
        )
    return body


@dataclass(frozen=True)
class TrackingResult:
    """How a tracked import ended.

    Attributes:
        status: ``end``, ``error`` (the service or the tracking call failed)
            or ``timeout`` (the deadline passed first).
        percent: the last ``input_percent_completion`` seen.
        message: the last ``input_action_message`` or the failure.
        polls: tracking requests made.
    """

    status: Literal["end", "error", "timeout"]
    percent: int
    message: str
    polls: int


async def poll_tracking(
    http: HttpClient,
    url: str,
    *,
    base: str,
    deadline: float,
    interval: float,
    clock: Clock,
    where: str,
) -> TrackingResult:
    """Poll a ``status_tracking`` URL until ``end``, an error or ``deadline`` seconds.

    A reply without ``input_status`` counts as finished, as the SDK reads it.

    Raises:
        UnsafeURL: the URL is not on the connector's host; it is not fetched.
    """
    check_origin(url, base, what="status_tracking URL")
    started = clock.now()
    polls, percent, message = 0, 0, ""
    while True:
        polls += 1
        try:
            body = await read_json(http, "GET", url, where=f"{where} tracking")
        except TransientError as exc:
            message = str(exc)
        except BulkflowError as exc:
            return TrackingResult("error", percent, str(exc), polls)
        else:
            status = str(body.get("input_status") or "end")
            percent = _int(body.get("input_percent_completion")) or percent
            message = str(body.get("input_action_message") or "")
            if status == "end":
                return TrackingResult("end", 100, message, polls)
            if status == "error":
                return TrackingResult("error", percent, message, polls)

        if clock.now() - started + interval > deadline:
            where_url = safe_url(url)
            return TrackingResult(
                "timeout", percent, f"{where_url}: not ended after {polls} polls", polls
            )
        await clock.sleep(interval)
