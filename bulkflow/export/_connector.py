"""An export connector: where it is, how to sign for it, what to ask."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ExportConnector:
    """An export connector: where it is and how to sign for it.

    Attributes:
        url: the API endpoint, e.g. ``https://api.saleslayer.com/``.
        code: the connector code.
        secret: the connector's secret; never shown in reprs, logs or reports.
        page_size: the ``pagination`` to ask for (the service rounds it).
        params: extra query parameters (``group_category_id`` and the like).
        service: what the stored state is tied to; by default the URL's
            ``scheme://host:port``. A replica refuses state from another
            service (an in-process emulator on a random port names itself).
        lag: seconds to subtract from the stored cursor when asking for
            changes, so that changes the service stamped just before a
            run's ``time`` but made visible after it are asked for again
            (they arrive twice, harmlessly). 0 trusts the service's ``time``.
    """

    url: str
    code: str
    secret: str = field(repr=False)
    page_size: int = 5000
    params: dict[str, str] = field(default_factory=lambda: {"group_category_id": "1"})
    lag: int = 0
    service: str | None = None
