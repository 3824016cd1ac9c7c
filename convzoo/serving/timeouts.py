"""``within``: await with a time limit, raising ``TimeoutError``, without a task per wait.

``asyncio.wait_for`` wraps its awaitable in a new task each time (before Python 3.12), which costs about
15 µs; the body read and the batcher wait with a limit on every request. ``asyncio.timeout`` (3.11+)
only arms a timer.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

if sys.version_info >= (3, 11):
    async def within(awaitable: Awaitable[T], seconds: float) -> T:
        async with asyncio.timeout(seconds):
            return await awaitable
else:  # pragma: no cover -- Python 3.10
    async def within(awaitable: Awaitable[T], seconds: float) -> T:
        try:
            return await asyncio.wait_for(awaitable, seconds)
        except asyncio.TimeoutError:
            raise TimeoutError from None
