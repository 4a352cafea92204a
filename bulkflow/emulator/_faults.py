"""Switchable faults: the ways a real service and the network misbehave.

A :class:`Fault` names what goes wrong and on which export request (counted
from 1 across the emulator's life) or on which page of a run; each fires a
given number of times. Tests use them to show that retries, resumes and
error messages work; ``bulkflow serve --fault`` switches them on by hand.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from bulkflow._exceptions import UsageError

FaultKind = Literal[
    "http_500", "http_503", "http_429", "api_error", "reset", "truncate", "slow"
]

KINDS: tuple[str, ...] = (
    "http_500",
    "http_503",
    "http_429",
    "api_error",
    "reset",
    "truncate",
    "slow",
)


@dataclass(frozen=True)
class Fault:
    """One misbehaviour.

    Attributes:
        kind: ``http_500``/``http_503`` (a server error), ``http_429`` (with
            ``Retry-After: retry_after``), ``api_error`` (HTTP 200 with
            ``error: code``), ``reset`` (the connection drops after half the
            body), ``truncate`` (a complete response whose JSON stops half
            way), ``slow`` (the body trickles, ``delay`` seconds per 64 KiB).
        request: fire on this export request (1 = the first one ever).
        page: fire on this page number of a run (any run).
        times: how many times it fires before it is spent.
    """

    kind: FaultKind
    request: int | None = None
    page: int | None = None
    times: int = 1
    code: int = 11
    retry_after: float = 1.0
    delay: float = 0.5

    def matches(self, request: int, page: int) -> bool:
        """True when this fault is meant for that request or page."""
        if self.request is not None and self.request != request:
            return False
        return self.page is None or self.page == page


def parse_fault(text: str) -> Fault:
    """Read ``KIND[:page=N][:request=N][:times=N][:code=N][:retry_after=S]``.

    Raises:
        UsageError: naming the part that is wrong.
    """
    kind, *options = text.split(":")
    if kind not in KINDS:
        raise UsageError(f"--fault {text!r}: kind must be one of {', '.join(KINDS)}")
    values: dict[str, float] = {}
    for option in options:
        name, _, raw = option.partition("=")
        if name not in ("page", "request", "times", "code", "retry_after", "delay"):
            raise UsageError(f"--fault {text!r}: unknown option {name!r}")
        try:
            values[name] = float(raw)
        except ValueError:
            raise UsageError(f"--fault {text!r}: {name} needs a number") from None
    integers = {
        k: int(v) for k, v in values.items() if k not in ("retry_after", "delay")
    }
    return Fault(
        kind,  # type: ignore[arg-type]  # checked against KINDS above
        request=integers.get("request"),
        page=integers.get("page"),
        times=integers.get("times", 1),
        code=integers.get("code", 11),
        retry_after=values.get("retry_after", 1.0),
        delay=values.get("delay", 0.5),
    )


class FaultPlan:
    """The faults still to fire, and how many requests have been seen."""

    def __init__(self, faults: tuple[Fault, ...]) -> None:
        self._left = {index: fault.times for index, fault in enumerate(faults)}
        self._faults = faults
        self.requests = 0
        self.fired: list[tuple[int, str]] = []

    def next(self, page: int) -> Fault | None:
        """Count a request; return the fault to apply to it, if any."""
        self.requests += 1
        for index, fault in enumerate(self._faults):
            if self._left[index] > 0 and fault.matches(self.requests, page):
                self._left[index] -= 1
                self.fired.append((self.requests, fault.kind))
                return fault
        return None


async def apply(
    fault: Fault, request: web.Request, body: bytes, error_body: bytes
) -> web.StreamResponse:
    """Answer ``request`` as ``fault`` says, given the page it should have got."""
    if fault.kind in ("http_500", "http_503"):
        return web.Response(status=int(fault.kind[-3:]), text="fault: server error")
    if fault.kind == "http_429":
        headers = {"Retry-After": f"{fault.retry_after:g}"}
        return web.Response(
            status=429, text="fault: too many requests", headers=headers
        )
    if fault.kind == "api_error":
        return web.Response(body=error_body, content_type="application/json")
    if fault.kind == "truncate":
        cut = body[: len(body) // 2]
        return web.Response(body=cut, content_type="application/json")
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(body)
    await response.prepare(request)
    if fault.kind == "reset":
        await response.write(body[: len(body) // 2])
        if request.transport is not None:
            request.transport.close()
        return response
    for start in range(0, len(body), 65536):
        await response.write(body[start : start + 65536])
        await asyncio.sleep(fault.delay)
    await response.write_eof()
    return response
