"""The emulator answers as API 1.18 does (saleslayer-1.18.md §1, §2, §5, §9)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from bulkflow.emulator import (
    DEMO_CODE,
    DEMO_SECRET,
    CatalogStore,
    EmulatorConfig,
    open_emulator,
)
from bulkflow.protocol import encode_form, signed_params

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp client, no bulkflow in the way."""
    async with aiohttp.ClientSession() as session:
        yield session


def signed(**extra: Any) -> dict[str, str]:
    """The auth parameters of a fresh request plus ``extra``."""
    params = signed_params(DEMO_CODE, DEMO_SECRET, time=int(time.time()))
    return {**params, "ver": "1.18", **{k: str(v) for k, v in extra.items()}}


async def get(session: aiohttp.ClientSession, url: str, **params: Any) -> Any:
    """GET ``url`` and decode its JSON body."""
    async with session.get(url, params=params or None) as response:
        assert response.status == 200
        return orjson.loads(await response.read())


async def test_a_first_page_carries_the_header_and_rounded_pagination(
    luma_store: CatalogStore, client: aiohttp.ClientSession
) -> None:
    """pagination=1234 gives pages of 1,000 rows and every header key of §2.2."""
    async with open_emulator(luma_store) as url:
        page = await get(client, url, **signed(pagination=1234))

    rows = sum(len(rows) for rows in page["data"].values())
    assert rows == 1000
    assert page["version"] == "1.18" and page["action"] == "refresh"
    assert page["page_count"] == 3 and page["page_length"] == 1000
    assert page["schema"]["connector_ID"] == DEMO_CODE
    assert set(page["data_schema"]) == {"catalogue", "products", "product_formats"}
    assert page["next_page"].startswith(url)


async def test_next_page_keys_come_before_data(
    luma_store: CatalogStore, client: aiohttp.ClientSession
) -> None:
    """A streaming client can read next_page before the rows (§9 key order)."""
    async with open_emulator(luma_store) as url:
        async with client.get(url, params=signed(pagination=500)) as response:
            body = await response.read()

    assert body.index(b'"next_page"') < body.index(b'"data"')
    assert body.index(b'"data_schema"') < body.index(b'"data"')


async def test_later_pages_repeat_time_and_schema(
    luma_store: CatalogStore, client: aiohttp.ClientSession
) -> None:
    """Every page of a run has the first page's time and the full schema."""
    async with open_emulator(luma_store) as url:
        first = await get(client, url, **signed(pagination=500))
        second = await get(client, first["next_page"])

    assert second["time"] == first["time"]
    assert second["data_schema"] == first["data_schema"]
    assert second["data_schema_info"] == first["data_schema_info"]


async def test_a_run_serves_every_item_once_in_order(
    luma_store: CatalogStore, client: aiohttp.ClientSession
) -> None:
    """Following next_page to the end gives each of the 2,070 items exactly once."""
    seen: list[tuple[str, int]] = []
    async with open_emulator(luma_store) as url:
        page = await get(client, url, **signed(pagination=700))
        while True:
            seen += [(t, row[1]) for t, rows in page["data"].items() for row in rows]
            if "next_page" not in page:
                break
            page = await get(client, page["next_page"])

    assert len(seen) == len(set(seen)) == 2070


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"ver": "2.0"}, 6),
        ({"code": "CN_UNKNOWN"}, 2),
        ({"key256": "0" * 64}, 4),
        ({"time": "12345"}, 4),  # the key no longer matches the time
    ],
)
async def test_bad_requests_get_their_error_code(
    luma_store: CatalogStore,
    client: aiohttp.ClientSession,
    change: dict[str, str],
    code: int,
) -> None:
    """Wrong version, code or key are errors 6, 2 and 4, as HTTP 200 bodies."""
    async with open_emulator(luma_store) as url:
        answer = await get(client, url, **{**signed(), **change})

    assert answer["error"] == code
    assert "data" not in answer


async def test_a_reused_unique_is_error_3(
    luma_store: CatalogStore, client: aiohttp.ClientSession
) -> None:
    """The same signed request twice within the clock window is refused."""
    params = signed()
    async with open_emulator(luma_store) as url:
        first = await get(client, url, **params)
        second = await get(client, url, **params)

    assert "error" not in first
    assert second["error"] == 3


async def test_the_legacy_sha1_key_is_accepted(
    luma_store: CatalogStore, client: aiohttp.ClientSession
) -> None:
    """``key`` (SHA-1) signs as well as ``key256`` does (§1.2)."""
    params = signed_params(
        DEMO_CODE, DEMO_SECRET, time=int(time.time()), algorithm="sha1"
    )
    async with open_emulator(luma_store) as url:
        page = await get(client, url, **params, ver="1.18")

    assert "key" in params and "error" not in page


@pytest.mark.parametrize(("offset", "code"), [(400, 13), (-400, 12)])
async def test_a_request_time_off_by_minutes_is_12_or_13(
    luma_store: CatalogStore, client: aiohttp.ClientSession, offset: int, code: int
) -> None:
    """Beyond ±300 s a request's time is expired (13) or in the future (12)."""
    config = EmulatorConfig(clock_offset=offset)
    async with open_emulator(luma_store, config=config) as url:
        answer = await get(client, url, **signed())

    assert answer["error"] == code


async def test_a_tampered_token_is_refused_and_an_old_one_expires(
    luma_store: CatalogStore, client: aiohttp.ClientSession
) -> None:
    """next_page tokens are signed (error 1 when altered) and expire (error 13)."""
    async with open_emulator(luma_store) as url:
        first = await get(client, url, **signed(pagination=500))
        tampered = first["next_page"][:-3] + (
            "AAA" if not first["next_page"].endswith("AAA") else "BBB"
        )
        refused = await get(client, tampered)
    async with open_emulator(luma_store, config=EmulatorConfig(token_ttl=-1)) as url:
        first = await get(client, url, **signed(pagination=500))
        expired = await get(client, first["next_page"])

    assert refused["error"] == 1
    assert expired["error"] == 13


async def test_version_1_17_serves_everything_in_one_page(
    luma_store: CatalogStore, client: aiohttp.ClientSession
) -> None:
    """1.17 has no pagination: one page, no next_page."""
    async with open_emulator(luma_store) as url:
        page = await get(client, url, **{**signed(pagination=500), "ver": "1.17"})

    assert "next_page" not in page
    assert sum(len(rows) for rows in page["data"].values()) == 2070


async def test_a_future_last_update_is_error_5_with_all_data(
    luma_store: CatalogStore, client: aiohttp.ClientSession
) -> None:
    """Error 5 is informative: everything comes, as a refresh (§5)."""
    async with open_emulator(luma_store) as url:
        page = await get(client, url, **signed(last_update=4_000_000_000))

    assert page["error"] == 5 and page["action"] == "refresh"
    assert sum(len(rows) for rows in page["data"].values()) == 1000


@pytest.mark.parametrize("encoding", ["form", "json", "multipart"])
async def test_parameters_in_any_body_encoding(
    luma_store: CatalogStore, client: aiohttp.ClientSession, encoding: str
) -> None:
    """Form, JSON and multipart bodies all carry parameters; the body wins (§1.5)."""
    query = signed(pagination=10_000)
    body_fields = {"pagination": "500"}
    async with open_emulator(luma_store) as url:
        if encoding == "form":
            data: Any = encode_form(body_fields)
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
        elif encoding == "json":
            data, headers = orjson.dumps(body_fields), {"Content-Type": "text/plain"}
        else:
            data, headers = aiohttp.FormData(body_fields), {}
        async with client.post(
            url, params=query, data=data, headers=headers
        ) as response:
            page = orjson.loads(await response.read())

    assert sum(len(rows) for rows in page["data"].values()) == 500
