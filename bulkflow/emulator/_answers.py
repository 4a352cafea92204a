"""Pieces of answers shared by the export and import sides of the emulator."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from bulkflow.protocol import API_VERSION, describe

_TRUE = ("1", "true", "yes", "on")


def error_response(code: int, now: int, message: str | None = None) -> web.Response:
    """An API error as the reference sends it: HTTP 200, ``error`` in the body."""
    body = {
        "version": API_VERSION,
        "time": now,
        "error": code,
        "error_message": message or describe(code).text,
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def flag(params: Mapping[str, Any], name: str) -> bool:
    """True when the request sets the 0/1 parameter ``name``."""
    return str(params.get(name, "0")).strip().lower() in _TRUE
