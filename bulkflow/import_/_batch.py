"""Batches: import items grouped under the API's limits, and their request bodies.

A batch holds at most ``max_items`` items (the API takes 50,000 per call)
and at most ``max_batch_bytes`` of encoded body, counted before any gzip:
the limit protects what the server must parse, not the wire. Upserts travel
in ``input_data`` and deletions in ``delete_data``, per table, as §4.1 says.

The default encoding is the one the reference client sends: PHP-bracket form
fields. PHP's encoder drops ``None`` and empty lists, which would make "clear
this field" impossible to say, so both travel as an empty value here (the
emulator reads an empty value as "no value"). JSON bodies carry values as
they are.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import orjson

from bulkflow._exceptions import DataError, UsageError
from bulkflow._json import dumps_exact
from bulkflow.import_._sources import ImportItem
from bulkflow.protocol import iter_fields, quote_form

#: The most items one import call may carry (``saleslayer-1.18.md`` §4.1).
MAX_ITEMS_PER_CALL = 50_000
DEFAULT_BATCH_SIZE = 5_000
DEFAULT_MAX_BATCH_BYTES = 8 * 1024 * 1024

Encoding = Literal["form", "json"]
Kind = Literal["input_data", "delete_data"]

#: JSON overhead of a batch beyond its items: braces, keys, commas.
_JSON_ENVELOPE = 64


def _kind(item: ImportItem) -> Kind:
    return "delete_data" if item.delete else "input_data"


def form_value(value: Any) -> Any:
    """``value`` with ``None`` and empty containers as ``""``, at every depth.

    Positions inside lists are kept: PHP's encoder would skip a ``None`` member
    and shift the indexes after it.
    """
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return [form_value(member) for member in value] if value else ""
    if isinstance(value, Mapping):
        return {key: form_value(member) for key, member in value.items()} or ""
    return value


def form_fragment(kind: Kind, table: str, index: int, fields: dict[str, Any]) -> str:
    """The form fields of one item, ``kind[table][index][field]=value&...``."""
    if "[" in table or "]" in table:
        raise DataError(
            f"table {table!r}: a name with '[' or ']' cannot travel in a "
            "PHP-bracket form; send JSON (--json)",
            where=f"table {table!r}",
            value=table,
        )
    pairs = iter_fields(form_value(fields), f"{kind}[{table}][{index}]")
    return "&".join(f"{quote_form(name)}={quote_form(text)}" for name, text in pairs)


@dataclass
class Batch:
    """Up to ``max_items`` items of one import call, in source order.

    Attributes:
        number: the batch's place in the run, from 1.
        items: the items, in source order.
        encoding: ``form`` or ``json``.
        size: the encoded bytes of the items (before gzip).
    """

    number: int
    encoding: Encoding
    items: list[ImportItem] = field(default_factory=list)
    size: int = 0
    _lists: dict[tuple[str, str], list[ImportItem]] = field(default_factory=dict)
    _fragments: list[str] = field(default_factory=list)
    _digest: str | None = None

    def __repr__(self) -> str:
        return (
            f"<Batch {self.number} items={len(self.items)} size={self.size} "
            f"tables={','.join(self.tables)}>"
        )

    @property
    def tables(self) -> tuple[str, ...]:
        """The tables of the batch, in order of first appearance."""
        return tuple(dict.fromkeys(table for _, table in self._lists))

    @property
    def upserts(self) -> int:
        """How many items go in ``input_data``."""
        return sum(len(v) for (k, _), v in self._lists.items() if k == "input_data")

    @property
    def deletes(self) -> int:
        """How many items go in ``delete_data``."""
        return len(self.items) - self.upserts

    def payload(self) -> dict[str, Any]:
        """``{"input_data": {table: [...]}, "delete_data": {...}}``, empty parts out."""
        payload: dict[str, Any] = {}
        for (kind, table), items in self._lists.items():
            payload.setdefault(kind, {})[table] = [item.fields for item in items]
        return payload

    @property
    def digest(self) -> str:
        """SHA-256 of the batch's content, whatever its encoding."""
        if self._digest is None:
            canonical = dumps_exact(self.payload(), sort_keys=True)
            self._digest = hashlib.sha256(canonical).hexdigest()
        return self._digest

    def locate(self, kind: str, table: str, index: int) -> ImportItem | None:
        """The item at ``kind[table][index]`` of the body, if there is one."""
        items = self._lists.get((kind, table), [])
        return items[index] if 0 <= index < len(items) else None

    def body(self, extra: Mapping[str, str] | None = None) -> bytes:
        """The request body, with ``extra`` parameters (flags) added."""
        extra = dict(extra or {})
        if self.encoding == "json":
            return dumps_exact({**self.payload(), **extra})
        flags = [f"{quote_form(k)}={quote_form(v)}" for k, v in extra.items()]
        return "&".join([*self._fragments, *flags]).encode()

    def _add(self, item: ImportItem, fragment: str | None, size: int) -> None:
        self._lists.setdefault((_kind(item), item.table), []).append(item)
        if fragment is not None:
            self._fragments.append(fragment)
        self.items.append(item)
        self.size += size
        self._digest = None


def flags_size(flags: Mapping[str, str], encoding: Encoding) -> int:
    """The bytes ``flags`` add to a body (:meth:`Batch.body`), at most."""
    if not flags:
        return 0
    if encoding == "json":
        return len(orjson.dumps(dict(flags)))  # braces for the commas, at most
    return sum(len(f"&{quote_form(k)}={quote_form(v)}") for k, v in flags.items())


def encode_body(
    body: bytes, *, encoding: Encoding, compress: bool
) -> tuple[bytes, dict[str, str]]:
    """The bytes to send and their headers: content type, and gzip when asked."""
    content_type = (
        "application/json"
        if encoding == "json"
        else "application/x-www-form-urlencoded"
    )
    headers = {"Content-Type": content_type}
    if compress:
        body = gzip.compress(body, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    return body, headers


class BatcherStatistics(NamedTuple):
    """A snapshot of a :class:`Batcher`.

    Attributes:
        items_in: items added.
        batches_out: batches closed.
        pending_items: items of the batch being filled.
        pending_bytes: encoded bytes of the batch being filled.
        max_items: the item bound of a batch.
        max_batch_bytes: the byte bound of a batch.
    """

    items_in: int
    batches_out: int
    pending_items: int
    pending_bytes: int
    max_items: int
    max_batch_bytes: int


class Batcher:
    """Group items into batches bounded by item count and encoded bytes.

    Args:
        max_items: items per batch, at most 50,000 (the API's limit).
        max_batch_bytes: encoded bytes per batch, before gzip.
        encoding: ``form`` (PHP brackets, the default) or ``json``.
        flags: the parameters every body will carry besides its items
            (``input_data_directly``...); their bytes count in the bound.

    Raises:
        UsageError: for bounds outside what the API takes.
    """

    def __init__(
        self,
        *,
        max_items: int = DEFAULT_BATCH_SIZE,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        encoding: Encoding = "form",
        flags: Mapping[str, str] | None = None,
    ) -> None:
        if not 1 <= max_items <= MAX_ITEMS_PER_CALL:
            raise UsageError(
                f"--batch-size {max_items}: give 1 to {MAX_ITEMS_PER_CALL:,}, the "
                "most items the API takes in one call"
            )
        if max_batch_bytes < 1024:
            raise UsageError(f"--max-batch-bytes {max_batch_bytes}: give 1024 or more")
        self.max_items = max_items
        self.max_batch_bytes = max_batch_bytes
        self.encoding: Encoding = encoding
        # What the flags add to every body comes off the bound for the items.
        self._room = max_batch_bytes - flags_size(flags or {}, encoding)
        self._batch = Batch(1, encoding)
        self._refs: dict[tuple[str, Any], Kind] = {}
        self._items_in = 0
        self._batches_out = 0

    def __repr__(self) -> str:
        stats = self.statistics()
        return (
            f"<Batcher pending={stats.pending_items} items/{stats.pending_bytes} "
            f"bytes batches_out={stats.batches_out} items_in={stats.items_in}>"
        )

    def add(self, item: ImportItem) -> Batch | None:
        """Add ``item``; return the batch it closed, when it did not fit there.

        A batch also closes before an item that deletes what the batch
        upserts (or the reverse), so that the two stay in source order.

        Raises:
            DataError: an item that alone encodes to more than ``max_batch_bytes``.
        """
        kind = _kind(item)
        fragment, size, alone = self._encode(item, kind)
        # Refused before anything closes: the batch being filled must stay
        # in the batcher, for the caller to flush and send.
        if alone > self._room:
            raise DataError(
                f"{item.where}: the item {item.ref!r} of {item.table!r} encodes to "
                f"{alone:,} bytes, more than --max-batch-bytes "
                f"{self.max_batch_bytes:,}",
                where=item.where,
                value=item.ref,
            )
        self._items_in += 1
        closed = None
        ref_key = (item.table, str(item.ref))
        seen = self._refs.get(ref_key)
        if seen is not None and seen != kind:
            closed = self._close()
        elif self._batch.items and self._full_with(size):
            closed = self._close()
        if closed is not None:
            # The size depends on the item's index in its batch: encode
            # again for its place in the new one.
            fragment, size, _ = self._encode(item, kind)

        self._batch._add(item, fragment, size)
        self._refs[ref_key] = kind
        return closed

    def flush(self) -> Batch | None:
        """Close and return the batch being filled, if it holds anything."""
        return self._close() if self._batch.items else None

    def statistics(self) -> BatcherStatistics:
        """A snapshot of the batcher's counters."""
        return BatcherStatistics(
            items_in=self._items_in,
            batches_out=self._batches_out,
            pending_items=len(self._batch.items),
            pending_bytes=self._batch.size,
            max_items=self.max_items,
            max_batch_bytes=self.max_batch_bytes,
        )

    def _full_with(self, size: int) -> bool:
        batch = self._batch
        too_many = len(batch.items) + 1 > self.max_items
        return too_many or batch.size + size > self._room

    def _close(self) -> Batch:
        closed = self._batch
        self._batches_out += 1
        self._batch = Batch(closed.number + 1, self.encoding)
        self._refs.clear()
        return closed

    def _encode(self, item: ImportItem, kind: Kind) -> tuple[str | None, int, int]:
        """Encode ``item`` once for its place in the batch being filled.

        Returns its form fragment (``None`` for JSON), its encoded size
        there, and its size as the first item of a batch (its least), which
        decides whether it can travel at all.
        """
        same = self._batch._lists.get((kind, item.table))
        if self.encoding == "json":
            fields = len(dumps_exact(item.fields)) + 1
            table = len(orjson.dumps(item.table)) + len(kind) + 8
            size = fields + (table if same is None else 0)
            size += _JSON_ENVELOPE if not self._batch.items else 0
            return None, size, fields + table + _JSON_ENVELOPE
        index = len(same or ())
        fragment = form_fragment(kind, item.table, index, item.fields)
        # Every field name carries the index once; at index 0 it is one digit.
        alone = len(fragment) + 1 - (len(str(index)) - 1) * (fragment.count("&") + 1)
        return fragment, len(fragment) + 1, alone
