"""Specification tests for the 1.18 wire format in ``bulkflow.protocol``.

Expected values come from ``saleslayer-1.18.md`` (§1.2 signing, §1.5 forms,
§2 schema and rows, §5 error codes, §9 decisions) or from a second, simpler
computation in the test; the made-up page of §2.7 lives in
``tests/data/example_page.json``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote_plus

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from bulkflow._exceptions import (
    ApiError,
    ApiRateLimited,
    AuthenticationError,
    ClockError,
    DataError,
    RateLimited,
    RowDecodeError,
    TransientApiError,
    TransientError,
)
from bulkflow.protocol import (
    ERROR_CODES,
    INFORMATIVE_CODES,
    MAX_UNIQUE,
    Algorithm,
    Item,
    Kind,
    Retry,
    TableSchema,
    decode_form,
    decode_row,
    describe,
    encode_form,
    error_for,
    list_values,
    media_values,
    quote_form,
    reference_ids,
    round_page_size,
    schemas,
    signature,
    signed_params,
    table_schema,
    verify,
)

EXAMPLE_PAGE = Path(__file__).parent / "data" / "example_page.json"

# §1.2's worked example.
CODE, SECRET, TIME, UNIQUE = "CN1H2C3", "s3cr3t", 1717000000, 42
HASH_INPUT = b"CN1H2C3s3cr3t171700000042"


def example_page() -> dict[str, Any]:
    """Load the made-up page of §2.7."""
    page: dict[str, Any] = orjson.loads(EXAMPLE_PAGE.read_bytes())
    return page


def example_schemas() -> dict[str, TableSchema]:
    """Build the table schemas of the §2.7 page."""
    page = example_page()
    return schemas(page["data_schema"], page["data_schema_info"])


# -- signing (§1.2) ----------------------------------------------------------


def test_signature_is_sha256_of_the_worked_example() -> None:
    """The key256 of §1.2's example is the SHA-256 hex of its hash input."""
    expected = hashlib.sha256(HASH_INPUT).hexdigest()

    assert signature(CODE, SECRET, TIME, UNIQUE) == expected


def test_signature_sha1_variant_is_sha1_of_the_same_input() -> None:
    """The legacy ``key`` is the SHA-1 hex of the same concatenation."""
    expected = hashlib.sha1(HASH_INPUT).hexdigest()

    assert signature(CODE, SECRET, TIME, UNIQUE, "sha1") == expected


def test_signed_params_carry_code_time_unique_and_key256() -> None:
    """Signed parameters are the four strings of §1.2, the key under ``key256``."""
    params = signed_params(CODE, SECRET, time=TIME, unique=UNIQUE)

    assert params == {
        "code": CODE,
        "time": "1717000000",
        "unique": "42",
        "key256": hashlib.sha256(HASH_INPUT).hexdigest(),
    }


def test_signed_params_sha1_travel_under_key() -> None:
    """With SHA-1 the digest travels as ``key`` and there is no ``key256``."""
    params = signed_params(CODE, SECRET, time=TIME, unique=UNIQUE, algorithm="sha1")

    assert params["key"] == hashlib.sha1(HASH_INPUT).hexdigest()
    assert "key256" not in params


def test_signed_params_draw_a_fresh_unique_per_call_within_mt_rand_range() -> None:
    """Each call without ``unique`` draws a new one in 0..2**31-1 and signs it."""
    draws = [signed_params(CODE, SECRET, time=TIME) for _ in range(200)]
    uniques = [int(params["unique"]) for params in draws]

    assert MAX_UNIQUE == 2**31 - 1
    assert all(0 <= unique <= 2**31 - 1 for unique in uniques)
    # 200 draws from 2**31 values: a repeat is a one-in-100000 event.
    assert len(set(uniques)) >= 199
    for params in draws:
        message = f"{CODE}{SECRET}{TIME}{params['unique']}".encode()
        assert params["key256"] == hashlib.sha256(message).hexdigest()


@pytest.mark.parametrize("algorithm", ["sha256", "sha1"])
def test_verify_accepts_the_right_key(algorithm: Algorithm) -> None:
    """verify() accepts the digest of the example, also written in upper case."""
    key = hashlib.new(algorithm, HASH_INPUT).hexdigest()

    assert verify(CODE, SECRET, TIME, UNIQUE, key, algorithm)
    assert verify(CODE, SECRET, TIME, UNIQUE, key.upper(), algorithm)


@pytest.mark.parametrize(
    ("code", "secret", "time", "unique", "algorithm"),
    [
        ("CN1H2C4", SECRET, TIME, UNIQUE, "sha256"),
        (CODE, "s3cr3T", TIME, UNIQUE, "sha256"),
        (CODE, SECRET, TIME + 1, UNIQUE, "sha256"),
        (CODE, SECRET, TIME, UNIQUE + 1, "sha256"),
        (CODE, SECRET, TIME, UNIQUE, "sha1"),
    ],
)
def test_verify_refuses_a_key_of_other_parts(
    code: str, secret: str, time: int, unique: int, algorithm: Algorithm
) -> None:
    """verify() refuses the example's key256 when any part or the algorithm differs."""
    key = hashlib.sha256(HASH_INPUT).hexdigest()

    assert not verify(code, secret, time, unique, key, algorithm)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("0" * 64, id="zeros"),
        pytest.param("not hex at all", id="not-hex"),
        pytest.param("é" * 64, id="non-ascii"),
    ],
)
def test_verify_refuses_garbage_keys(key: str) -> None:
    """verify() answers False, not an exception, for any forged key text."""
    assert verify(CODE, SECRET, TIME, UNIQUE, key, "sha256") is False


# -- forms (§1.5, §4.1) ------------------------------------------------------

# §4.1's made-up import body, as the nested value a client holds.
IMPORT_BODY: dict[str, Any] = {
    "input_data": {
        "products": [
            {"REF": "P-200", "product_name_en": "Runner", "price": 59.9},
            {"REF": "P-300", "product_name_en": "Trail 2"},
        ]
    },
    "delete_data": {"product_formats": [{"REF": "P-200-41"}]},
    "get_affected_ids": 1,
}

# The same body "decoded for readability", line by line from §4.1.
IMPORT_PAIRS = [
    ("input_data[products][0][REF]", "P-200"),
    ("input_data[products][0][product_name_en]", "Runner"),
    ("input_data[products][0][price]", "59.9"),
    ("input_data[products][1][REF]", "P-300"),
    ("input_data[products][1][product_name_en]", "Trail 2"),
    ("delete_data[product_formats][0][REF]", "P-200-41"),
    ("get_affected_ids", "1"),
]


def test_encode_form_writes_the_import_example_of_section_4_1() -> None:
    """The §4.1 payload encodes to exactly the field lines §4.1 shows."""
    body = encode_form(IMPORT_BODY)

    assert parse_qsl(body, keep_blank_values=True) == IMPORT_PAIRS


def test_encode_form_percent_encodes_brackets_and_spaces() -> None:
    """Brackets travel as %5B/%5D and a space as ``+``, as http_build_query writes."""
    body = encode_form(IMPORT_BODY)

    assert "[" not in body and "]" not in body
    assert "input_data%5Bproducts%5D%5B1%5D%5Bproduct_name_en%5D=Trail+2" in body


def test_encode_form_drops_none_and_empty_containers() -> None:
    """None members, empty lists and empty maps leave no field behind."""
    body = encode_form({"a": None, "b": [], "c": {}, "d": {"e": None}, "f": "x"})

    assert body == "f=x"


def test_encode_form_writes_booleans_as_one_and_zero() -> None:
    """True travels as ``1`` and False as ``0``."""
    body = encode_form({"yes": True, "no": False, "nested": [True]})

    assert parse_qsl(body) == [("yes", "1"), ("no", "0"), ("nested[0]", "1")]


def test_decode_form_reads_the_import_example_back_as_strings() -> None:
    """Encoding then decoding the §4.1 payload gives it back, every value a string."""
    expected = {
        "input_data": {
            "products": [
                {"REF": "P-200", "product_name_en": "Runner", "price": "59.9"},
                {"REF": "P-300", "product_name_en": "Trail 2"},
            ]
        },
        "delete_data": {"product_formats": [{"REF": "P-200-41"}]},
        "get_affected_ids": "1",
    }

    assert decode_form(encode_form(IMPORT_BODY)) == expected


def test_round_trip_turns_numbers_and_booleans_into_strings() -> None:
    """Scalars of every kind come back as the strings PHP would see."""
    data = {"n": 3, "f": -1.5, "t": True, "l": [0, "a b", False], "m": {"k": "v&w"}}

    assert decode_form(encode_form(data)) == {
        "n": "3",
        "f": "-1.5",
        "t": "1",
        "l": ["0", "a b", "0"],
        "m": {"k": "v&w"},
    }


def test_decode_form_appends_on_empty_brackets() -> None:
    """``name[]`` appends a new list element each time, as PHP does."""
    body = "tags[]=new&tags[]=sale&rows[][REF]=P-1&rows[][REF]=P-2"

    assert decode_form(body) == {
        "tags": ["new", "sale"],
        "rows": [{"REF": "P-1"}, {"REF": "P-2"}],
    }


def test_decode_form_appends_after_the_highest_explicit_index() -> None:
    """``a[1]=x&a[]=y`` keeps both values: PHP appends at index 2, not over index 1."""
    assert decode_form("a[1]=x&a[]=y") == {"a": {"1": "x", "2": "y"}}


def test_decode_form_keeps_a_zero_padded_index_as_a_key() -> None:
    """``a[0]`` and ``a[01]`` are two keys (PHP keeps "01" a string), not a crash."""
    assert decode_form("a[0]=x&a[01]=y") == {"a": {"0": "x", "01": "y"}}


@pytest.mark.parametrize("name", ["a[b", "a[b]]", "a[b]c", "a[[b]]"])
def test_decode_form_refuses_malformed_brackets_naming_the_field(name: str) -> None:
    """A field name with unbalanced or stray brackets raises DataError naming it."""
    with pytest.raises(DataError, match=re.escape(repr(name))) as caught:
        decode_form(f"{name}=1")

    assert caught.value.value == name


def test_decode_form_refuses_a_field_nested_under_a_value() -> None:
    """``a=1&a[b]=2`` uses ``a`` as a value and a map: DataError naming the field."""
    with pytest.raises(DataError, match=re.escape("'a[b]'")):
        decode_form("a=1&a[b]=2")


# -- error codes (§5) --------------------------------------------------------

# Code → (SDK text, retry rule), from §5's table and its Retry? column.
SECTION_5 = {
    1: ("Validation error", Retry.NEVER),
    2: ("Invalid connector code", Retry.NEVER),
    3: ("Wrong unique key", Retry.RESIGN_ONCE),
    4: ("Invalid codification key", Retry.NEVER),
    5: ("Incorrect date of last_update", Retry.NEVER),
    6: ("API version nonexistent", Retry.NEVER),
    7: ("Wrong output mode", Retry.NEVER),
    8: ("Invalid compression type", Retry.NEVER),
    9: ("Invalid private key", Retry.NEVER),
    10: ("Service temporarily blocked", Retry.BACK_OFF),
    11: ("Service temporarily unavailable", Retry.BACK_OFF),
    12: ("Incorrect date-code", Retry.RESIGN_ONCE),
    13: ("Date code has expired", Retry.RESIGN_ONCE),
    14: ("Updating data. Try later", Retry.BACK_OFF),
}


def test_error_codes_hold_every_code_of_section_5() -> None:
    """The table holds codes 1 to 14, each with the SDK's text and its retry rule."""
    assert {
        code: (entry.text, entry.retry) for code, entry in ERROR_CODES.items()
    } == SECTION_5


@pytest.mark.parametrize("code", sorted(SECTION_5))
def test_only_back_off_codes_are_transient(code: int) -> None:
    """Codes 10, 11 and 14 are transient; 3, 12, 13 and the rest are not."""
    assert describe(code).transient is (code in (10, 11, 14))


def test_informative_codes_are_those_that_still_return_data() -> None:
    """Codes 5, 7 and 8 inform while the data still comes (§5 severities)."""
    assert {5, 7, 8} <= INFORMATIVE_CODES
    assert INFORMATIVE_CODES <= {5, 6, 7, 8, 14}


def test_unknown_code_is_a_plain_api_error_never_retried() -> None:
    """A code outside §5 reads as "API error" and is never retried."""
    entry = describe(999)

    assert (entry.code, entry.text, entry.retry) == (999, "API error", Retry.NEVER)
    error = error_for(999, where="connector CN1, page 1")
    assert type(error) is ApiError
    assert error.code == 999


def test_error_10_is_api_rate_limited_and_transient() -> None:
    """Error 10 is an ApiRateLimited, so also a RateLimited and a TransientError."""
    error = error_for(10, where="connector CN1, page 1")

    assert isinstance(error, ApiRateLimited)
    assert isinstance(error, RateLimited)
    assert isinstance(error, TransientError)
    assert error.code == 10


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (11, TransientApiError),
        (14, TransientApiError),
        (2, AuthenticationError),
        (3, AuthenticationError),
        (4, AuthenticationError),
        (9, AuthenticationError),
        (12, ClockError),
        (13, ClockError),
        (1, ApiError),
        (5, ApiError),
        (6, ApiError),
        (7, ApiError),
        (8, ApiError),
    ],
)
def test_error_for_picks_the_class_of_the_code(code: int, cls: type[ApiError]) -> None:
    """Each server code maps to its branch of the exception tree, carrying the code."""
    error = error_for(code, where="connector CN1, page 1")

    assert type(error) is cls
    assert error.code == code
    assert isinstance(error, TransientError) is (code in (11, 14))


@pytest.mark.parametrize("code", sorted(SECTION_5))
def test_error_message_names_where_and_the_code(code: int) -> None:
    """The message says where the error happened and which code the server sent."""
    where = "connector CN-X, page three"
    text = str(error_for(code, where=where))

    assert where in text
    assert re.search(rf"(?<!\d){code}(?!\d)", text.replace(where, ""))


def test_error_message_includes_the_server_message() -> None:
    """A server ``error_message`` is kept in the exception's message."""
    error = error_for(11, where="connector CN1", message="maintenance window")

    assert "maintenance window" in str(error)


# -- schema (§2.4, §2.5) -----------------------------------------------------


def test_schemas_build_one_table_per_data_schema_entry() -> None:
    """The example page yields the schemas of catalogue, products and variants."""
    page = example_page()

    assert set(example_schemas()) == set(page["data_schema"])


def test_columns_follow_data_schema_order_from_position_two() -> None:
    """Columns are named and placed as in data_schema, STATUS and ID left out."""
    page = example_page()

    for table, schema in example_schemas().items():
        layout = page["data_schema"][table]
        names = [e if isinstance(e, str) else next(iter(e)) for e in layout]
        assert [c.name for c in schema.columns] == names[2:]
        assert [c.position for c in schema.columns] == list(range(2, len(layout)))
        assert schema.width == len(layout)


def test_column_kinds_of_the_example() -> None:
    """ID_* are references, image/file media, list lists, the rest scalars."""
    kinds = {
        table: {c.name: c.kind for c in schema.columns}
        for table, schema in example_schemas().items()
    }

    assert kinds == {
        "catalogue": {
            "ID_PARENT": Kind.REFERENCE,
            "section_reference": Kind.SCALAR,
            "section_name_en": Kind.SCALAR,
            "section_name_es": Kind.SCALAR,
            "section_image": Kind.MEDIA,
        },
        "products": {
            "ID_catalogue": Kind.REFERENCE,
            "product_reference": Kind.SCALAR,
            "product_name_en": Kind.SCALAR,
            "product_name_es": Kind.SCALAR,
            "product_tags": Kind.LIST,
            "product_image": Kind.MEDIA,
            "product_manual": Kind.MEDIA,
            "price": Kind.SCALAR,
        },
        "product_formats": {
            "ID_products": Kind.REFERENCE,
            "format_sku": Kind.SCALAR,
            "stock": Kind.SCALAR,
            "active": Kind.SCALAR,
        },
    }


def test_media_labels_start_after_status_and_id() -> None:
    """Media columns keep their sub-labels from index 2: size codes or the file slot."""
    tables = example_schemas()

    assert tables["catalogue"].column("section_image").labels == ("ORG", "THM")
    assert tables["products"].column("product_image").labels == ("ORG", "IMD", "THM")
    assert tables["products"].column("product_manual").labels == ("FILE",)


def test_media_label_objects_are_read_by_their_field() -> None:
    """A sub-label given as an object is named by its ``field`` member."""
    schema = table_schema(
        "t", ["STATUS", "ID", {"pic": ["STATUS", "ID", {"field": "ORG"}, "THM"]}], {}
    )

    assert schema.column("pic").labels == ("ORG", "THM")


def test_reference_columns_join_their_tables() -> None:
    """``ID_catalogue`` joins catalogue, ``ID_products`` products, ID_PARENT nothing."""
    tables = example_schemas()

    assert tables["products"].column("ID_catalogue").joins == "catalogue"
    assert tables["product_formats"].column("ID_products").joins == "products"
    assert tables["catalogue"].column("ID_PARENT").joins is None


def test_multilingual_columns_group_by_basename() -> None:
    """Columns sharing a basename group as {language: column}."""
    tables = example_schemas()

    assert tables["products"].multilingual() == {
        "product_name": {"en": "product_name_en", "es": "product_name_es"}
    }
    assert tables["catalogue"].multilingual() == {
        "section_name": {"en": "section_name_en", "es": "section_name_es"}
    }
    assert tables["product_formats"].multilingual() == {}


def test_empty_data_schema_written_as_php_list_means_no_tables() -> None:
    """PHP's ``[]`` for an empty map reads as no tables."""
    php_empty_map: Any = []

    assert schemas(php_empty_map, php_empty_map) == {}


# -- rows (§2.6) -------------------------------------------------------------


def decode_example(table: str, index: int) -> Item:
    """Decode row ``index`` of ``table`` in the example page."""
    row = example_page()["data"][table][index]
    return decode_row(example_schemas()[table], row, index=index)


def test_decode_category_row_with_image() -> None:
    """The first category splits into references, fields, translations and media."""
    assert decode_example("catalogue", 0) == Item(
        table="catalogue",
        id=10,
        deleted=False,
        status="M",
        references={"ID_PARENT": []},
        fields={
            "section_reference": "CAT-10",
            "section_name_en": "Shoes",
            "section_name_es": "Zapatos",
        },
        translations={"section_name": {"en": "Shoes", "es": "Zapatos"}},
        media={
            "section_image": {
                "501": {
                    "ORG": "https://img.example/cat10.jpg",
                    "THM": "https://img.example/cat10_thm.jpg",
                }
            }
        },
    )


def test_decode_category_row_with_parent_and_no_image() -> None:
    """A scalar parent becomes a one-element list and ``[]`` media no files."""
    item = decode_example("catalogue", 1)

    assert item.references == {"ID_PARENT": [10]}
    assert item.media == {"section_image": {}}


def test_decode_product_row() -> None:
    """The example product keeps its category list, tags, two media and price."""
    assert decode_example("products", 0) == Item(
        table="products",
        id=200,
        deleted=False,
        status="M",
        references={"ID_catalogue": [10, 12]},
        fields={
            "product_reference": "P-200",
            "product_name_en": "Runner",
            "product_name_es": "Corredora",
            "product_tags": ["new", "sale"],
            "price": 59.9,
        },
        translations={"product_name": {"en": "Runner", "es": "Corredora"}},
        media={
            "product_image": {
                "9001": {
                    "ORG": "https://img.example/p200.jpg",
                    "IMD": "https://img.example/p200_imd.jpg",
                    "THM": "https://img.example/p200_thm.jpg",
                }
            },
            "product_manual": {"77": {"FILE": "https://files.example/p200-manual.pdf"}},
        },
    )


def test_decode_variant_row() -> None:
    """The example variant references its product and keeps its scalars."""
    item = decode_example("product_formats", 0)

    assert (item.id, item.deleted) == (3000, False)
    assert item.references == {"ID_products": [200]}
    assert item.fields == {"format_sku": "P-200-42", "stock": 12, "active": 1}


@pytest.mark.parametrize(
    ("table", "index", "item_id"),
    [("catalogue", 2, 11), ("products", 1, 201), ("product_formats", 1, 3001)],
)
def test_decode_short_deletion_rows(table: str, index: int, item_id: int) -> None:
    """A ``["D", id]`` row is a deletion with nothing but its ID."""
    assert decode_example(table, index) == Item(table, item_id, True, "D")


def test_status_other_than_d_is_an_upsert() -> None:
    """A ``U`` row of full width decodes as a change, not a deletion."""
    row = ["U", 3002, 200, "P-200-43", 0, 0]
    item = decode_row(example_schemas()["product_formats"], row)

    assert (item.status, item.deleted) == ("U", False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (7, [7]),
        ("7", ["7"]),
        (0, []),
        ("0", []),
        ("", []),
        (None, []),
        ([], []),
        ([10, 12], [10, 12]),
    ],
)
def test_reference_ids_normalise_to_lists(value: Any, expected: list[Any]) -> None:
    """References become lists: a scalar id one element, 0 and empty none."""
    assert reference_ids(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(["a", "b"], ["a", "b"]), ("a", ["a"]), ("", []), (None, [])],
)
def test_list_values_accept_a_list_or_one_string(
    value: Any, expected: list[Any]
) -> None:
    """A list column is a list, one string one value, empty none."""
    assert list_values(value) == expected


def test_media_values_rekey_by_file_id_as_strings() -> None:
    """Tuples ``[status, id, url...]`` become ``{str(id): {label: url}}``."""
    value = [["M", 1, "u1-org", "u1-thm"], ["M", 2, "u2-org", "u2-thm"]]

    assert media_values(value, ("ORG", "THM")) == {
        "1": {"ORG": "u1-org", "THM": "u1-thm"},
        "2": {"ORG": "u2-org", "THM": "u2-thm"},
    }


@pytest.mark.parametrize("value", [["U"], ["U", 5, "url"], [], None, ""])
def test_media_values_unchanged_or_empty_mean_no_files(value: Any) -> None:
    """A media value starting with ``"U"``, or empty, reads as no files."""
    assert media_values(value, ("ORG",)) == {}


def test_decode_row_with_unchanged_media() -> None:
    """In a row, a ``"U"`` media value gives an empty map for that column."""
    row = ["M", 12, 10, "CAT-12", "Trail", "Montaña", ["U"]]
    item = decode_row(example_schemas()["catalogue"], row)

    assert item.media == {"section_image": {}}


@pytest.mark.parametrize(
    "row",
    [
        ["M", 12, 10, "CAT-12", "Trail", "Montaña"],
        ["M", 12, 10, "CAT-12", "Trail", "Montaña", [], "extra"],
        ["M", 12],
    ],
)
def test_wrong_width_row_raises_with_evidence(row: list[Any]) -> None:
    """A non-D row narrower or wider than the schema raises RowDecodeError."""
    with pytest.raises(RowDecodeError, match="catalogue") as caught:
        decode_row(example_schemas()["catalogue"], row, index=4)

    error = caught.value
    assert "catalogue" in error.where and "4" in error.where
    assert error.offset == 4
    assert error.value == row


@pytest.mark.parametrize("row", [["M"], [], "M", None, {"STATUS": "M", "ID": 1}])
def test_row_that_is_not_a_status_id_list_raises(row: Any) -> None:
    """A row that is not a list of at least status and ID raises RowDecodeError."""
    with pytest.raises(RowDecodeError) as caught:
        decode_row(example_schemas()["catalogue"], row, index=0)

    assert caught.value.value == row


def test_reference_of_wrong_shape_raises_row_decode_error() -> None:
    """A reference that is a map is refused with the row as evidence."""
    row = ["M", 3002, {"id": 200}, "P-200-43", 0, 0]

    with pytest.raises(RowDecodeError, match="product_formats") as caught:
        decode_row(example_schemas()["product_formats"], row, index=9)

    assert (caught.value.offset, caught.value.value) == (9, row)


# -- page sizes (§1.3, §9) ---------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "served"),
    [
        (None, 1000),
        (0, 1000),
        (-5, 1000),
        (1, 500),
        (999, 500),
        (1000, 1000),
        (1499, 1000),
        (1500, 1500),
        (5000, 5000),
    ],
)
def test_round_page_size(requested: int | None, served: int) -> None:
    """Sizes round down to a multiple of 500, at least 500; none asks for 1000."""
    assert round_page_size(requested) == served


@settings(max_examples=500)
@given(st.text())
def test_quote_form_equals_urllibs_quote_plus(text: str) -> None:
    """The fast form quoting spells every text as ``urllib.parse.quote_plus`` does."""
    try:
        expected = quote_plus(text)
    except UnicodeEncodeError:  # lone surrogates: neither can spell them
        with pytest.raises(UnicodeEncodeError):
            quote_form(text)
        return
    assert quote_form(text) == expected


@pytest.mark.parametrize("byte", range(256))
def test_quote_form_spells_each_byte_as_quote_plus(byte: int) -> None:
    """Every single byte value, ASCII or not, gets the same spelling."""
    text = bytes([byte]).decode("latin-1")
    assert quote_form(text) == quote_plus(text)


def test_a_key_of_unicode_digits_is_a_name_not_an_index() -> None:
    """'²' is a digit to str.isdigit, but not a list index: decoded as a name."""
    assert decode_form("a%5B%C2%B2%5D=1") == {"a": {"²": "1"}}


def test_an_empty_field_name_is_refused_in_forms() -> None:
    """PHP reads ``a[]`` as an append: an empty name cannot travel in a form."""
    with pytest.raises(DataError, match="empty name"):
        encode_form({"input_data": {"t": [{"REF": "1", "": "x"}]}})
