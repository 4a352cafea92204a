"""What an import run did: batches by outcome, items by kind, requests and rate."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bulkflow.import_._limits import max_in_any_window


@dataclass
class ImportReport:
    """What a run did; live while it runs, final when it returns.

    Batches are counted once each, whatever their retries: ``batches_sent``
    is ``accepted + partial + refused + unconfirmed`` once the run is over,
    and ``batches_skipped`` were accepted by an earlier run (the ledger).
    ``requests`` counts every POST, retries included, and
    ``max_requests_in_any_1s_window`` is computed from their start times.
    """

    connector: str
    source: str = ""
    batches_sent: int = 0
    batches_accepted: int = 0
    batches_partial: int = 0
    batches_refused: int = 0
    batches_unconfirmed: int = 0
    batches_skipped: int = 0
    items_read: int = 0
    items_sent: int = 0
    items_skipped: int = 0
    items_new: int = 0
    items_updated: int = 0
    items_deleted: int = 0
    items_rejected: int = 0
    unattributed_errors: int = 0
    requests: int = 0
    retries: int = 0
    slowdowns: int = 0
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    rejects: str | None = None
    ledger: str | None = None
    warnings: list[str] = field(default_factory=list)
    request_times: list[float] = field(default_factory=list, repr=False)

    @property
    def items_per_s(self) -> float:
        """Items sent per second of the run."""
        return self.items_sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def max_requests_in_any_1s_window(self) -> int:
        """The most POSTs that started within any one second of the run."""
        return max_in_any_window(self.request_times, 1.0)

    @property
    def complete(self) -> bool:
        """True when every batch was accepted whole (now or by an earlier run)."""
        return self.batches_sent == self.batches_accepted and not self.items_rejected

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (the CLI's ``--report``)."""
        return {
            "connector": self.connector,
            "source": self.source,
            "batches": {
                "sent": self.batches_sent,
                "accepted": self.batches_accepted,
                "partial": self.batches_partial,
                "refused": self.batches_refused,
                "unconfirmed": self.batches_unconfirmed,
                "skipped": self.batches_skipped,
            },
            "items": {
                "read": self.items_read,
                "sent": self.items_sent,
                "skipped": self.items_skipped,
                "new": self.items_new,
                "updated": self.items_updated,
                "deleted": self.items_deleted,
                "rejected": self.items_rejected,
            },
            "unattributed_errors": self.unattributed_errors,
            "requests": self.requests,
            "retries": self.retries,
            "slowdowns": self.slowdowns,
            "seconds": round(self.seconds, 3),
            "items_per_s": round(self.items_per_s, 1),
            "max_requests_in_any_1s_window": self.max_requests_in_any_1s_window,
            "rejects": self.rejects,
            "ledger": self.ledger,
            "warnings": self.warnings,
        }
