"""Getting the cause out of a task group's exception group."""

from __future__ import annotations

import asyncio

import anyio

from bulkflow._exceptions import BulkflowError

#: What the other tasks raise once one has failed: consequences, never the
#: cause. (bulkflow runs on asyncio: aiohttp knows no other loop.)
_CONSEQUENCES = (
    asyncio.CancelledError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
)


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception that caused a task group to fail.

    One task fails; the others are cancelled, or find their channel broken.
    The cause is the first bulkflow error, else the first exception that is
    neither a cancellation nor a broken channel, else the first at all.
    """
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        current = pending.pop(0)
        if isinstance(current, BaseExceptionGroup):
            pending[:0] = list(current.exceptions)
        else:
            leaves.append(current)
    ours = [leaf for leaf in leaves if isinstance(leaf, BulkflowError)]
    causes = [leaf for leaf in leaves if not isinstance(leaf, _CONSEQUENCES)]
    return (ours or causes or leaves)[0]
