"""Hardening: the bearer token, the body-size limit, CORS for named origins, safe model names.

Pure ASGI middleware (no per-request task or copy), so the guard costs microseconds on the hot path.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
from collections.abc import Sequence

from convzoo.bounds import parse_count
from convzoo.errors import BadInputError
from convzoo.serving.limits import Limits
from convzoo.serving.memory import MemoryBudget, Reservation
from convzoo.serving.tensors import ProtocolError, forget
from convzoo.serving.timeouts import within

PUBLIC_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})  # probes carry no credentials
# headers whose second, different value would let two parts of the stack read two different requests
SINGLE_HEADERS = frozenset({b"authorization", b"content-length", b"content-type", b"content-encoding",
                            b"inference-header-content-length", b"transfer-encoding", b"range", b"host"})


def cors_origins_from_env() -> list[str]:
    """``CONVZOO_CORS_ORIGINS=https://a.example,https://b.example``: the origins a browser may call from."""
    return [origin.strip() for origin in os.environ.get("CONVZOO_CORS_ORIGINS", "").split(",") if origin.strip()]


async def send_error(send, status: int, message: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Refuse requests without the bearer token (401) or with a body over ``max_body`` bytes (413); read
    the body under two clocks, a deadline for each silence and a minimum average rate (408), holding
    its bytes in the request's memory reservation (``memory.Reservation``, at
    ``scope["state"]["reservation"]``) as they arrive, until the answer is sent.

    A declared ``Content-Length`` may refuse (over the limit) but never reserves: sixteen clients that
    declare 64 MiB and send three bytes hold three bytes of the budget. A dripping body, however regular
    its drops, falls behind ``body_min_rate`` and is cut off ``body_grace_s`` after its headers.
    """

    def __init__(self, app, token: str | None, limits: Limits, budget: MemoryBudget) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body = limits.max_body
        self.body_timeout_s = limits.body_timeout_s
        self.body_min_rate = limits.body_min_rate
        self.body_grace_s = limits.body_grace_s
        self.budget = budget

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        reservation = self.budget.reservation()
        scope.setdefault("state", {})["reservation"] = reservation
        started = False

        async def tracked_send(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._guarded(scope, receive, tracked_send, reservation)
        except ProtocolError as e:
            forget(e)  # the request's frames go now, not at the next GC pass
            if not started:
                await send_error(send, e.status, e.message, [(k.lower().encode(), v.encode())
                                                             for k, v in e.headers.items()])
        finally:
            reservation.release()

    async def _guarded(self, scope, receive, send, reservation: Reservation) -> None:
        headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers") or []:
            if name in SINGLE_HEADERS and headers.get(name, value) != value:
                raise ProtocolError(400, f"the header {name.decode()} is given twice with different values; "
                                         "send it once")
            headers[name] = value
        if self.token is not None and scope["path"] not in PUBLIC_PATHS:
            given = headers.get(b"authorization", b"")
            scheme, _, credential = given.partition(b" ")
            if not given:
                raise ProtocolError(401, "this server needs a bearer token: send the header "
                                         "'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"})
            if scheme.lower() != b"bearer" or not hmac.compare_digest(credential.strip(), self.token):
                raise ProtocolError(401, "the bearer token is wrong: send 'Authorization: Bearer <token>' "
                                         "with the token the server was started with",
                                    {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        length = headers.get(b"content-length")
        if length is not None:
            declared = _count(length, "Content-Length")
            if declared > self.max_body:
                raise ProtocolError(413, f"the body is {declared:,} bytes, more than this server's limit of "
                                         f"{self.max_body:,} bytes; send a smaller image or batch",
                                    {"Connection": "close"})
            if declared == 0:
                await self.app(scope, receive, send)
                return
        elif scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        body = await self._read(receive, reservation)
        if body is None:  # the client went away
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive, reservation: Reservation) -> bytes | None:
        chunks, seen = [], 0
        loop = asyncio.get_running_loop()
        start = loop.time() + self.body_grace_s
        while True:
            behind_at = start + seen / self.body_min_rate  # when this many bytes become too few
            wait = min(self.body_timeout_s, behind_at - loop.time())
            try:
                if wait <= 0:
                    raise TimeoutError
                message = await within(receive(), wait)
            except TimeoutError:
                if wait < self.body_timeout_s:
                    raise ProtocolError(408, f"the request body arrived at less than {self.body_min_rate:,} bytes/s "
                                             f"({seen:,} bytes so far); send it at once",
                                        {"Connection": "close"}) from None
                raise ProtocolError(408, f"the request body stalled: nothing arrived for {self.body_timeout_s:g} s "
                                         f"after {seen:,} bytes; send the whole body at once",
                                    {"Connection": "close"}) from None
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_body:
                raise ProtocolError(413, f"the body is more than this server's limit of {self.max_body:,} bytes; "
                                         "send a smaller image or batch", {"Connection": "close"})
            await reservation.grow(len(chunk), "the request body")
            chunks.append(chunk)
            if not message.get("more_body", False):
                if len(chunks) == 1:
                    return chunk
                await reservation.grow(seen, "the request body")  # the joined copy, beside its pieces
                return b"".join(chunks)


def _count(value: bytes, header: str) -> int:
    try:
        return parse_count(value, f"the {header} header")
    except BadInputError as e:
        raise ProtocolError(e.status, str(e)) from None


class HeadAsGet:
    """HEAD answered wherever GET is (load balancers and uptime checkers send HEAD): the request runs as a
    GET, and the answer goes out with its headers only. FastAPI routes answer the methods they declare,
    and a GET route does not declare HEAD."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b""})
                return
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def _replay(body: bytes, receive):
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as the server would

    return replayed
