"""The HTTP connection layer: uvicorn's httptools protocol with a deadline for headers, a cap on
open connections, and JSON for the errors it answers itself (a request it cannot parse).

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but waits for ever on a client
that sends half a header; a stalled body is cut off by ``security.Guard``, which sees the body.
"""

from __future__ import annotations

import asyncio
import json

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from convzoo.serving.limits import Limits


def _json_response(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n").encode() + body


class GuardedProtocol(HttpToolsProtocol):
    header_timeout_s: float = 10.0
    max_connections: int = 1024

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        crowded = len(self.connections) >= self.max_connections
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        if crowded:
            transport.write(_json_response(503, "Service Unavailable", f"this server has {self.max_connections} "
                                           "connections open, its limit; retry shortly"))
            transport.close()
            return
        self._arm()  # a client that connects and says nothing is cut off like one that stalls mid-header

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if getattr(self, "_header_timer", None) is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(_json_response(408, "Request Timeout", f"the request headers did not arrive "
                                                f"within {self.header_timeout_s:g} s; send them at once"))
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._disarm()
        self.transport.write(_json_response(400, "Bad Request", f"the request is not valid HTTP/1.1 ({msg.rstrip('.')}); "
                                            "check the request line and headers"))
        self.transport.close()


def protocol_for(limits: Limits) -> type[GuardedProtocol]:
    return type("ConvzooProtocol", (GuardedProtocol,), {"header_timeout_s": limits.header_timeout_s,
                                                        "max_connections": limits.max_connections})


def server_config(app, host: str, port: int, limits: Limits, **options) -> uvicorn.Config:
    """The uvicorn settings of ``convzoo serve``, shared with the in-process server of tests and notebooks."""
    return uvicorn.Config(app, host=host, port=port, http=protocol_for(limits), timeout_keep_alive=limits.keep_alive_s,
                          server_header=False, access_log=False, **options)
