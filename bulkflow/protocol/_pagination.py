"""Page sizes: how the service rounds the ``pagination`` parameter (§1.3, §9)."""

from __future__ import annotations

#: Items per page when the request names none.
DEFAULT_PAGE_SIZE = 1000

#: The smallest page the service serves.
MIN_PAGE_SIZE = 500


def round_page_size(requested: int | None) -> int:
    """Round a requested page size down to the service's ranges.

    The documentation says "below 1000 → 500, 1001–1500 → 1000, …"; read
    literally, the SDK's default of 5,000 would get 4,500, which no plugin
    expects, so bulkflow reads it as "down to a multiple of 500": below 1,000
    gives 500, 1,000–1,499 gives 1,000, 5,000 gives 5,000. No request, or a
    non-positive one, gets the default of 1,000.
    """
    if requested is None or requested <= 0:
        return DEFAULT_PAGE_SIZE
    return max(MIN_PAGE_SIZE, requested - requested % 500)
