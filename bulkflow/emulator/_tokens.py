"""Signed, expiring ``page_token`` values that carry a run's position (§9)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import asdict, dataclass

import orjson


class BadToken(ValueError):
    """The token was not issued by this emulator or was altered."""


@dataclass(frozen=True)
class RunPosition:
    """Where a run stands: everything the next page needs.

    ``since`` is ``None`` for a refresh and the run's ``last_update``
    otherwise; ``table`` indexes the catalog's table order and ``after_id``
    is the last id served from it.
    """

    code: str
    time: int
    since: int | None
    page_size: int
    page: int
    page_count: int
    table: int
    after_id: int
    error: int
    issued_at: int
    flags: int = 0


def encode(position: RunPosition, key: bytes) -> str:
    """Return ``position`` as an opaque URL-safe token signed with ``key``."""
    body = orjson.dumps(asdict(position))
    mac = hmac.new(key, body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac + body).decode().rstrip("=")


def decode(token: str, key: bytes) -> RunPosition:
    """Check and decode a token.

    Raises:
        BadToken: when the signature does not match or the body is not ours.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError as exc:
        raise BadToken("page_token is not base64") from exc
    mac, body = raw[:16], raw[16:]
    expected = hmac.new(key, body, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(mac, expected):
        raise BadToken("page_token signature does not match")
    try:
        return RunPosition(**orjson.loads(body))
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise BadToken("page_token body is not a run position") from exc
