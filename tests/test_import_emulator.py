"""The emulator's import connectors: items by REF, errors, limits, tracking, rates."""

from __future__ import annotations

import gzip
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest

from bulkflow.emulator import (
    CatalogStore,
    Emulator,
    EmulatorConfig,
    catalog_source,
    serve_emulator,
)
from bulkflow.emulator._imports import add_import_connector, parse_rate_limit
from bulkflow.protocol import encode_form, signed_params

pytestmark = pytest.mark.anyio

CODE = "CN_IMPORT_TEST"
SECRET = "import-test-secret"


@pytest.fixture
def store() -> Iterator[CatalogStore]:
    """An emulator store with the Luma schema, no items and an import connector."""
    store = CatalogStore.open(None)
    store.load(catalog_source("empty"))
    add_import_connector(store, CODE, SECRET, tracking_polls=3)
    yield store
    store.close()


@asynccontextmanager
async def serve(store: CatalogStore) -> AsyncIterator[tuple[str, Emulator]]:
    """Serve ``store`` on 127.0.0.1; yield the URL and the emulator."""
    emulator = Emulator(store, EmulatorConfig())
    async with serve_emulator(emulator) as url:
        yield url, emulator


@pytest.fixture
async def served(store: CatalogStore) -> AsyncIterator[tuple[str, Emulator]]:
    """The store's emulator, running."""
    async with serve(store) as running:
        yield running


async def call(
    url: str,
    payload: dict[str, Any],
    *,
    encoding: str = "form",
    compress: bool = False,
) -> tuple[int, dict[str, Any], Any]:
    """POST a signed import call; return status, JSON body and headers."""
    params = {**signed_params(CODE, SECRET, time=int(time.time())), "ver": "1.18"}
    if encoding == "form":
        body = encode_form(payload).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    else:
        body = orjson.dumps(payload)
        headers = {"Content-Type": "application/json"}
    if compress:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, params=params, data=body, headers=headers) as r:
            return r.status, orjson.loads(await r.read()), r.headers


def columns(store: CatalogStore, table: str) -> list[str]:
    """The names in ``data_schema[table]``, media entries by their name."""
    entries = store.get_meta("data_schema")[table]
    return [entry if isinstance(entry, str) else next(iter(entry)) for entry in entries]


def items(store: CatalogStore, table: str) -> dict[str, list[Any]]:
    """The live items of ``table``, values keyed by REF, with the ID first."""
    position = columns(store, table).index("REF") - 2
    return {values[position]: [id_, *values] for id_, values in store.iter_items(table)}


def value(store: CatalogStore, table: str, ref: str, column: str) -> Any:
    """One stored value of the item ``ref``."""
    position = columns(store, table).index(column) - 1
    return items(store, table)[ref][position]


CATEGORIES = {
    "input_data": {
        "catalogue": [
            {"REF": "root", "category_name_en": "Root", "REF_PARENT": ""},
            {"REF": "men", "category_name_en": "Men", "REF_PARENT": "root"},
            {"REF": "women", "category_name_en": "Women", "REF_PARENT": "root"},
        ]
    },
    "input_data_directly": 1,
}


async def test_new_refs_become_items_with_values_read_by_type(
    served: tuple[str, Emulator], store: CatalogStore
) -> None:
    """Form text becomes numbers and booleans as the columns' types say."""
    url, _ = served
    product = {
        "REF": "P-1",
        "product_name_en": "Runner",
        "price": "59.9",
        "qty": "3",
        "sale": "1",
        "climate": ["Cool", "Windy"],
    }
    status, body, _ = await call(
        url, {"input_data": {"products": [product]}, "input_data_directly": 1}
    )

    assert status == 200
    answer = body["input_response"]
    assert answer["result"] == 1 and answer["errors"] == []
    assert answer["new_items"] == {"products": 1}
    assert answer["items_affected"] == {"products": 1}
    assert "status_tracking" not in answer
    assert value(store, "products", "P-1", "price") == 59.9
    assert value(store, "products", "P-1", "qty") == 3
    assert value(store, "products", "P-1", "sale") == 1
    assert value(store, "products", "P-1", "climate") == ["Cool", "Windy"]
    assert value(store, "products", "P-1", "product_image") == []
    assert value(store, "products", "P-1", "ID_catalogue") == []


async def test_a_known_ref_gets_the_given_fields_and_a_new_change_time(
    served: tuple[str, Emulator], store: CatalogStore
) -> None:
    """An update replaces the fields sent, keeps the others and stamps the time."""
    url, _ = served
    first = {"REF": "P-1", "product_name_en": "Runner", "price": 10}
    await call(url, {"input_data": {"products": [first]}, "input_data_directly": 1})
    before = int(time.time())
    second = {"REF": "P-1", "price": 12, "color": ""}
    _, body, _ = await call(
        url, {"input_data": {"products": [second]}, "input_data_directly": 1}
    )

    assert body["input_response"]["updated_items"] == {"products": 1}
    product = items(store, "products")["P-1"]
    assert len(items(store, "products")) == 1
    assert value(store, "products", "P-1", "price") == 12
    assert value(store, "products", "P-1", "product_name_en") == "Runner"
    assert value(store, "products", "P-1", "color") is None
    assert product[0] in store.changed_since("products", before)


async def test_references_given_as_refs_are_stored_as_ids(
    served: tuple[str, Emulator], store: CatalogStore
) -> None:
    """REF_PARENT, REF_catalogue (a list) and REF_products (one) resolve to IDs."""
    url, _ = served
    await call(url, CATEGORIES)
    categories = items(store, "catalogue")

    assert categories["root"][1] == 0
    assert categories["men"][1] == categories["root"][0]
    product = {"REF": "P-1", "REF_catalogue": ["men", "women"]}
    variant = {"REF": "P-1-S", "REF_products": "P-1"}
    payload = {"input_data": {"products": [product], "product_formats": [variant]}}
    _, body, _ = await call(url, {**payload, "input_data_directly": 1})
    assert body["input_response"]["result"] == 1
    ids = [categories["men"][0], categories["women"][0]]
    assert value(store, "products", "P-1", "ID_catalogue") == ids
    product_id = items(store, "products")["P-1"][0]
    assert value(store, "product_formats", "P-1-S", "ID_products") == product_id


async def test_a_list_reference_with_one_ref_stays_a_list(
    served: tuple[str, Emulator], store: CatalogStore
) -> None:
    """``ID_catalogue`` is a list column: one REF is stored as a one-id list."""
    url, _ = served
    await call(url, CATEGORIES)
    product = {"REF": "P-1", "REF_catalogue": "men"}
    await call(url, {"input_data": {"products": [product]}, "input_data_directly": 1})
    men = items(store, "catalogue")["men"][0]
    assert value(store, "products", "P-1", "ID_catalogue") == [men]


async def test_a_child_before_its_parent_in_one_call_is_resolved(
    served: tuple[str, Emulator], store: CatalogStore
) -> None:
    """Items wait for a parent that comes later in the same call."""
    url, _ = served
    child = {"REF": "child", "REF_PARENT": "parent"}
    parent = {"REF": "parent", "REF_PARENT": ""}
    _, body, _ = await call(
        url, {"input_data": {"catalogue": [child, parent]}, "input_data_directly": 1}
    )
    assert body["input_response"]["errors"] == []
    categories = items(store, "catalogue")
    assert categories["child"][1] == categories["parent"][0]


async def test_bad_items_are_refused_one_by_one_and_the_rest_applied(
    served: tuple[str, Emulator], store: CatalogStore
) -> None:
    """Unknown field, missing REF, bad number, unknown REF: four errors, one item in."""
    url, _ = served
    products = [
        {"REF": "ok", "product_name_en": "Fine"},
        {"REF": "P-2", "colour": "red"},
        {"product_name_en": "no reference"},
        {"REF": "P-4", "price": "cheap"},
        {"REF": "P-5", "REF_catalogue": ["nowhere"]},
    ]
    _, body, _ = await call(
        url, {"input_data": {"products": products}, "input_data_directly": 1}
    )
    answer = body["input_response"]

    assert answer["result"] == 1
    assert answer["new_items"] == {"products": 1}
    errors = answer["errors"]
    assert len(errors) == 4
    assert errors[0].startswith("input_data[products][1] REF 'P-2': unknown field")
    assert errors[1].startswith("input_data[products][2]: no REF")
    assert errors[2].startswith("input_data[products][3] REF 'P-4': field 'price'")
    assert "no catalogue item has REF 'nowhere'" in errors[3]
    assert set(items(store, "products")) == {"ok"}


async def test_a_call_that_applies_nothing_is_refused(
    served: tuple[str, Emulator],
) -> None:
    """Errors and nothing applied: result 2."""
    url, _ = served
    products = [{"REF": "P-1", "colour": "red"}]
    _, body, _ = await call(
        url, {"input_data": {"products": products}, "input_data_directly": 1}
    )
    assert body["input_response"]["result"] == 2


async def test_unknown_tables_and_file_urls_are_errors(
    served: tuple[str, Emulator],
) -> None:
    """A table the catalog lacks, or a CSV URL instead of items, is reported."""
    url, _ = served
    payload = {
        "input_data": {"shoes": [{"REF": "S-1"}], "products": "https://x.test/a.csv"},
        "input_data_directly": 1,
    }
    _, body, _ = await call(url, payload, encoding="json")
    errors = body["input_response"]["errors"]
    assert any("no table 'shoes'" in error for error in errors)
    assert any(
        "input_data[products]: the emulator imports item lists" in e for e in errors
    )
    assert body["input_response"]["result"] == 2


async def test_more_than_50000_items_is_api_error_1(
    served: tuple[str, Emulator], store: CatalogStore
) -> None:
    """The documented limit: the call is refused whole, naming the limit."""
    url, _ = served
    products = [{"REF": f"P-{index}"} for index in range(50_001)]
    _, body, _ = await call(
        url, {"input_data": {"products": products}}, encoding="json"
    )
    assert body["error"] == 1
    assert "at most 50,000 items per call" in body["error_message"]
    assert "50,001" in body["error_message"]
    assert items(store, "products") == {}


async def test_deletions_remove_items_and_unknown_refs_are_no_ops(
    served: tuple[str, Emulator], store: CatalogStore
) -> None:
    """delete_data removes by REF; a deletion of nothing is harmless."""
    url, _ = served
    products = [{"REF": "P-1"}, {"REF": "P-2"}]
    await call(url, {"input_data": {"products": products}, "input_data_directly": 1})
    deleted_id = items(store, "products")["P-1"][0]
    before = int(time.time())
    payload = {
        "delete_data": {"products": [{"REF": "P-1"}, {"REF": "gone"}]},
        "input_data_directly": 1,
    }
    _, body, _ = await call(url, payload)
    answer = body["input_response"]

    assert answer["deleted_items"] == {"products": 1}
    assert answer["errors"] == [] and answer["result"] == 1
    assert set(items(store, "products")) == {"P-2"}
    assert deleted_id in store.changed_since("products", before)
    _, again, _ = await call(url, payload)
    assert again["input_response"]["result"] == 0


async def test_affected_ids_come_as_id_ref_pairs(served: tuple[str, Emulator]) -> None:
    """get_affected_ids=1 answers pairs instead of counts."""
    url, _ = served
    payload = {
        "input_data": {"products": [{"REF": "P-1"}]},
        "input_data_directly": 1,
        "get_affected_ids": 1,
    }
    _, body, _ = await call(url, payload)
    assert body["input_response"]["new_items"] == {
        "products": [{"ID": 1, "REF": "P-1"}]
    }


async def test_tracking_walks_prepare_started_end(served: tuple[str, Emulator]) -> None:
    """A queued import's URL goes prepare 0 → started 33, 67 → end 100, same host."""
    url, _ = served
    _, body, _ = await call(url, {"input_data": {"products": [{"REF": "P-1"}]}})
    tracking = body["input_response"]["status_tracking"]

    assert tracking.startswith(url.rstrip("/"))
    seen = []
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            async with session.get(tracking) as response:
                poll = orjson.loads(await response.read())
            seen.append((poll["input_status"], poll["input_percent_completion"]))
        async with session.get(tracking + "x") as response:
            assert response.status == 404
    assert seen == [
        ("prepare", 0),
        ("started", 33),
        ("started", 67),
        ("end", 100),
        ("end", 100),
    ]


@pytest.mark.parametrize(
    ("encoding", "compress"), [("form", True), ("json", False), ("json", True)]
)
async def test_gzip_and_json_bodies_are_applied_like_forms(
    served: tuple[str, Emulator], store: CatalogStore, encoding: str, compress: bool
) -> None:
    """The same item arrives the same way, however the body travels."""
    url, _ = served
    product = {"REF": "P-1", "product_name_en": "Runner", "price": 59.9}
    payload = {"input_data": {"products": [product]}, "input_data_directly": 1}
    status, body, _ = await call(url, payload, encoding=encoding, compress=compress)
    assert status == 200 and body["input_response"]["result"] == 1
    assert value(store, "products", "P-1", "price") == 59.9
    assert value(store, "products", "P-1", "product_name_en") == "Runner"


async def test_media_take_urls_or_exported_tuples(
    served: tuple[str, Emulator], store: CatalogStore
) -> None:
    """A URL becomes a new file; a tuple is kept, its file id a number again."""
    url, _ = served
    tuple_ = [
        "M",
        "7",
        "https://m.test/o.jpg",
        "https://m.test/i.jpg",
        "https://m.test/t.jpg",
    ]
    products = [
        {"REF": "P-1", "product_image": ["https://m.test/a.jpg"]},
        {"REF": "P-2", "product_image": [tuple_]},
    ]
    await call(url, {"input_data": {"products": products}, "input_data_directly": 1})
    first = value(store, "products", "P-1", "product_image")

    assert first[0][0] == "M" and isinstance(first[0][1], int)
    assert first[0][2:] == ["https://m.test/a.jpg"] * 3
    assert value(store, "products", "P-2", "product_image") == [["M", 7, *tuple_[2:]]]


async def test_past_the_rate_budget_calls_get_error_10(store: CatalogStore) -> None:
    """A 2/s budget: the third call in a second is refused and not recorded."""
    add_import_connector(store, CODE, SECRET, "2/s")
    async with serve(store) as (url, emulator):
        answers = [
            await call(url, {"input_data": {"products": [{"REF": f"P-{i}"}]}})
            for i in range(3)
        ]
    assert [body.get("error", 0) for _, body, _ in answers] == [0, 0, 10]
    assert "rate budget of 2/s" in answers[2][1]["error_message"]
    assert len(emulator.imports.arrivals(CODE)) == 2
    assert len(emulator.imports.refusals(CODE)) == 1


async def test_the_budget_can_answer_http_429_with_retry_after(
    store: CatalogStore,
) -> None:
    """With rate_limit_http the refusal is a real 429 and names its wait."""
    add_import_connector(store, CODE, SECRET, "1/s", rate_limit_http=True)
    async with serve(store) as (url, _):
        await call(url, {"input_data": {"products": [{"REF": "P-1"}]}})
        status, body, headers = await call(url, {"input_data": {"products": []}})
    assert status == 429 and body["error"] == 10
    assert int(headers["Retry-After"]) >= 1


def test_a_rate_limit_that_cannot_be_read_is_refused(store: CatalogStore) -> None:
    """``bulkflow serve --rate-limit`` takes N/s or N/min."""
    from bulkflow import UsageError

    with pytest.raises(UsageError, match="--rate-limit"):
        add_import_connector(store, CODE, SECRET, "often")


@pytest.mark.parametrize(
    ("text", "calls", "seconds"),
    [
        ("5/s", 5, 1),
        ("0.5/s", 1, 2),
        ("1.5/s", 3, 2),
        ("0.25/s", 1, 4),
        ("90/min", 90, 60),
    ],
)
def test_a_fractional_rate_limit_is_whole_calls_over_a_longer_window(
    text: str, calls: int, seconds: int
) -> None:
    """0.5/s is one call in any two seconds, not a budget of zero calls."""
    assert parse_rate_limit(text) == (calls, seconds)
