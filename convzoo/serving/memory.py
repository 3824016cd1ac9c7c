"""The service's memory budget: every request reserves what it will allocate before it allocates it.

A request reserves in steps, as it learns what it is: its body when the headers give its length,
the decoded tensors once the JSON header is read, the model's activations once the shape is known.
When the budget is spent the request waits (up to ``wait_s``) for others to finish, then gets a
503; a request that could never fit gets a 413 at once. So the memory in flight stays under the
budget whatever is sent, and what a model run takes is measured once per model at load time.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import re
from collections.abc import Callable
from pathlib import Path

from convzoo.serving.tensors import ProtocolError

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:,.0f} MiB"


class MemoryBudget:
    """Bytes that requests in flight may hold, shared by every request on the event loop.

    Waiters are served first come, first served: a large request at the head of the queue is not
    overtaken by small ones for ever, it waits until enough is given back.
    """

    def __init__(self, total: int, wait_s: float = 30.0) -> None:
        self.total = int(total)
        self.wait_s = wait_s
        self.used = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future]] = collections.deque()

    def reservation(self) -> Reservation:
        return Reservation(self)

    async def _take(self, n: int, what: str) -> None:
        if n > self.total:
            raise ProtocolError(413, f"{what} needs about {_mib(n)} of memory, more than this server's budget of "
                                     f"{_mib(self.total)} for all requests together; send a smaller input")
        if not self._waiters and self.used + n <= self.total:
            self.used += n
            return
        turn = asyncio.get_running_loop().create_future()
        self._waiters.append((n, turn))
        try:
            await asyncio.wait_for(asyncio.shield(turn), self.wait_s)
        except asyncio.TimeoutError:
            if turn.done():  # granted just as the wait ran out: keep it
                return
            turn.cancel()
            self._grant()  # those behind it may fit now
            raise ProtocolError(503, f"the server is busy with large requests ({_mib(self.used)} of its "
                                     f"{_mib(self.total)} memory budget in use); retry shortly",
                                {"Retry-After": "5"}) from None
        except BaseException:
            if turn.done() and not turn.cancelled():
                self._give(n)  # granted, but the request went away
            else:
                turn.cancel()
                self._grant()
            raise

    def _give(self, n: int) -> None:
        self.used -= n
        self._grant()

    def _grant(self) -> None:
        while self._waiters:
            n, turn = self._waiters[0]
            if turn.cancelled():
                self._waiters.popleft()
                continue
            if self.used + n > self.total:
                return
            self._waiters.popleft()
            self.used += n
            turn.set_result(None)


class Reservation:
    """What one request holds; grows as the request is understood, released once when it ends."""

    def __init__(self, budget: MemoryBudget) -> None:
        self.budget = budget
        self.held = 0

    async def grow(self, n: int, what: str) -> None:
        n = max(0, int(n))
        if n:
            await self.budget._take(n, what)
            self.held += n

    def release(self) -> None:
        held, self.held = self.held, 0
        if held:
            self.budget._give(held)


M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc's mallopt parameters (malloc.h)


def tune_allocator() -> None:
    """Make freed request memory leave the process: glibc keeps freed blocks in per-thread arenas and raises
    its mmap threshold as large blocks are freed, so a server's RSS would stay at its worst moment.
    Blocks of 1 MiB and more are mmapped (and unmapped when freed), and threads share two arenas."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)
        libc.mallopt(M_ARENA_MAX, 2)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def _trim_heap() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _status_kib(key: str) -> int | None:
    try:
        match = re.search(rf"^{key}:\s+(\d+) kB", STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def peak_rss_bytes() -> int | None:
    """This process's peak resident memory (VmHWM), or None off Linux."""
    kib = _status_kib("VmHWM")
    return None if kib is None else kib * 1024


def measure_peak(run: Callable[[], object]) -> int | None:
    """Bytes of resident memory that ``run()`` added at its peak, or None where Linux cannot tell.

    Resets the process's peak (``clear_refs`` 5) first, so it reads this run alone; other threads'
    allocations in the meantime can only make the figure larger, never smaller.
    """
    _trim_heap()  # so the run cannot quietly reuse heap pages that an earlier one freed
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return None
    before = _status_kib("VmRSS")
    run()
    peak = _status_kib("VmHWM")
    if before is None or peak is None:
        return None
    return max(0, peak - before) * 1024
