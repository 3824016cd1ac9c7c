"""Hardening: the bearer token, the body-size limit, CORS for named origins, safe model names.

Pure ASGI middleware (no per-request task or copy), so the guard costs microseconds on the hot path.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Sequence

PUBLIC_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})  # probes carry no credentials


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
    """Refuse requests without the bearer token (401) or with a body over ``max_body`` bytes (413).

    A body without Content-Length (chunked) is counted as it arrives and refused as soon as it
    passes the limit, so no client can make the server buffer more than ``max_body`` bytes.
    """

    def __init__(self, app, token: str | None, max_body: int) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body = max_body

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.token is not None and scope["path"] not in PUBLIC_PATHS:
            given = headers.get(b"authorization", b"")
            scheme, _, credential = given.partition(b" ")
            if not given:
                await send_error(send, 401, "this server needs a bearer token: send the header "
                                 "'Authorization: Bearer <token>'", [(b"www-authenticate", b"Bearer")])
                return
            if scheme.lower() != b"bearer" or not hmac.compare_digest(credential.strip(), self.token):
                await send_error(send, 401, "the bearer token is wrong: send 'Authorization: Bearer <token>' "
                                 "with the token the server was started with",
                                 [(b"www-authenticate", b'Bearer error="invalid_token"')])
                return
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await send_error(send, 400, f"Content-Length must be a byte count, got {length.decode('latin-1')!r}")
                return
            if int(length) > self.max_body:
                await send_error(send, 413, f"the body is {int(length):,} bytes, more than this server's limit of "
                                 f"{self.max_body:,} bytes; send a smaller image or batch")
                return
            await self.app(scope, receive, send)
            return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        body = await self._read_chunked(receive)
        if body is None:
            await send_error(send, 413, f"the body is more than this server's limit of {self.max_body:,} bytes; "
                             "send a smaller image or batch")
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_chunked(self, receive) -> bytes | None:
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return b""
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive):
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as the server would

    return replayed
