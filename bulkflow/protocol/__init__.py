"""The 1.18 wire format, without I/O: signing, forms, error codes, schema and rows.

Both the client and the emulator use this package, so a fix to the wire
format lands on both sides at once. It imports nothing of bulkflow but the
exception tree.
"""

from bulkflow.protocol._codes import (
    ERROR_CODES as ERROR_CODES,
    INFORMATIVE_CODES as INFORMATIVE_CODES,
    ErrorCode as ErrorCode,
    Retry as Retry,
    describe as describe,
    error_for as error_for,
)
from bulkflow.protocol._forms import (
    decode_form as decode_form,
    decode_pairs as decode_pairs,
    encode_form as encode_form,
    iter_fields as iter_fields,
    quote_form as quote_form,
)
from bulkflow.protocol._pagination import (
    DEFAULT_PAGE_SIZE as DEFAULT_PAGE_SIZE,
    MIN_PAGE_SIZE as MIN_PAGE_SIZE,
    round_page_size as round_page_size,
)
from bulkflow.protocol._rows import (
    DELETED as DELETED,
    Item as Item,
    decode_row as decode_row,
    list_values as list_values,
    media_values as media_values,
    reference_ids as reference_ids,
)
from bulkflow.protocol._schema import (
    LEADING as LEADING,
    Column as Column,
    Kind as Kind,
    TableSchema as TableSchema,
    schemas as schemas,
    table_schema as table_schema,
)
from bulkflow.protocol._signing import (
    KEY_PARAM as KEY_PARAM,
    MAX_UNIQUE as MAX_UNIQUE,
    Algorithm as Algorithm,
    signature as signature,
    signed_params as signed_params,
    verify as verify,
)

#: The API version bulkflow speaks.
API_VERSION = "1.18"

__all__ = [
    "API_VERSION",
    "DEFAULT_PAGE_SIZE",
    "DELETED",
    "ERROR_CODES",
    "INFORMATIVE_CODES",
    "KEY_PARAM",
    "LEADING",
    "MAX_UNIQUE",
    "MIN_PAGE_SIZE",
    "Algorithm",
    "Column",
    "ErrorCode",
    "Item",
    "Kind",
    "Retry",
    "TableSchema",
    "decode_form",
    "decode_pairs",
    "decode_row",
    "describe",
    "encode_form",
    "error_for",
    "iter_fields",
    "list_values",
    "media_values",
    "quote_form",
    "reference_ids",
    "round_page_size",
    "schemas",
    "signature",
    "signed_params",
    "table_schema",
    "verify",
]
