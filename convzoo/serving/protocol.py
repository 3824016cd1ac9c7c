"""The HTTP connection layer: uvicorn's httptools protocol with the front's bounds, all decided before a
request reaches the app.

* the request line and headers: a deadline from their first byte (``header_timeout_s``), a size
  (``max_header_bytes``) and a count (``max_headers``); past either, 431. httptools and uvicorn have
  no such limits (h11's ``h11_max_incomplete_event_size`` is for the h11 protocol only), and httptools
  hands a header over only once it is whole, so its bytes are counted here as they arrive;
* connections: ``max_connections`` for requests, then ``probe_slots`` more that may only ask
  ``/v2/health/*`` (with a short header deadline), so a crowd of slow clients never starves a
  liveness probe; beyond both, a JSON 503 with ``Retry-After``;
* the descriptors: ``fit_to_descriptors`` raises the soft ``RLIMIT_NOFILE`` toward the hard one and
  caps the connections below it, so the kernel never resets a connection the cap would have answered.

A stalled or dripping body is cut off by ``security.Guard``, which sees the body.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import resource

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from convzoo.errors import ConvzooError
from convzoo.serving.limits import Limits

log = logging.getLogger("convzoo.serving")

PROBE_PATHS = frozenset({b"/v2/health/live", b"/v2/health/ready"})
PROBE_HEADER_TIMEOUT_S = 2.0  # a connection in a probe slot must say what it wants at once
DESCRIPTORS_KEPT = 128  # for model files, logs, the thread pool's pipes, and the listening sockets
REASONS = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large",
           503: "Service Unavailable"}


def _json_response(status: int, message: str, retry_after: int | None = None) -> bytes:
    body = json.dumps({"error": message}).encode()
    retry = f"retry-after: {retry_after}\r\n" if retry_after is not None else ""
    return (f"HTTP/1.1 {status} {REASONS[status]}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n{retry}connection: close\r\n\r\n").encode() + body


class Refused(Exception):
    """Raised inside a parser callback: httptools stops parsing, and the connection is answered and closed."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.response = _json_response(status, message, retry_after)


class GuardedProtocol(HttpToolsProtocol):
    header_timeout_s: float = 10.0
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    max_connections: int = 1024
    probe_slots: int = 64

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        open_before = len(self.connections)
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_headers = True  # from the first byte: a client that says nothing is cut off like a slow one
        self._header_bytes = self._header_count = 0
        self._probe_only = open_before >= self.max_connections
        if open_before >= self.max_connections + self.probe_slots:
            self._answer(_json_response(503, f"this server has {open_before:,} connections open, its limit; "
                                             "retry shortly", retry_after=1))
            return
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        timeout = PROBE_HEADER_TIMEOUT_S if self._probe_only else self.header_timeout_s
        self._header_timer = self.loop.call_later(timeout, self._headers_too_slow, timeout)

    def _disarm(self) -> None:
        if getattr(self, "_header_timer", None) is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _answer(self, response: bytes) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()

    def _headers_too_slow(self, timeout: float) -> None:
        self._header_timer = None
        self._answer(_json_response(408, f"the request headers did not arrive within {timeout:g} s; send them at once"))

    def data_received(self, data: bytes) -> None:
        """uvicorn's, with the header bytes counted: a chunk that arrives while the headers are incomplete
        and leaves them incomplete was all header (a chunk in which they end is not counted: at most one
        read, 256 KiB, past the limit is ever parsed)."""
        counting = self._in_headers
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # as uvicorn does (no websockets are served: it warns and carries on)
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as e:
            if isinstance(e.__context__, Refused):
                self._answer(e.__context__.response)
            else:
                self.send_400_response(str(e))
            return
        if counting and self._in_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._answer(_json_response(431, f"the request line and headers are more than {self.max_header_bytes:,} "
                                                 "bytes, this server's limit; send fewer or shorter headers"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = self._header_count = 0
        if self._header_timer is None:
            self._arm()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            raise Refused(431, f"the request has more than {self.max_headers} header fields, this server's limit; "
                               "send fewer")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        if self._probe_only and httptools.parse_url(self.url).path not in PROBE_PATHS:
            raise Refused(503, f"this server has {self.max_connections:,} connections open, its limit; retry "
                               "shortly (health probes are still answered)", retry_after=1)
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._answer(_json_response(400, f"the request is not valid HTTP/1.1 ({msg.rstrip('.')}); "
                                         "check the request line and headers"))


def fit_to_descriptors(limits: Limits) -> Limits:
    """``limits`` with ``max_connections`` lowered, where needed, to what this process's descriptors allow,
    after raising the soft ``RLIMIT_NOFILE`` as far as the hard one lets it. Logs the figures."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):  # not a Unix: nothing to fit
        return limits
    wanted = limits.max_connections + limits.probe_slots + DESCRIPTORS_KEPT
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):
            pass
    fitted = limits
    if soft != resource.RLIM_INFINITY and soft < wanted:
        room = soft - DESCRIPTORS_KEPT
        probes = max(1, min(limits.probe_slots, room // 16))
        connections = room - probes
        if connections < 8:
            raise ConvzooError(f"this process may open only {soft} files (ulimit -n); the service needs at least "
                               f"{DESCRIPTORS_KEPT + 16}: raise it with `ulimit -n 4096`")
        fitted = dataclasses.replace(limits, max_connections=connections, probe_slots=probes)
    log.info(json.dumps({"event": "connections", "descriptors": {"soft": soft, "hard": hard},
                         "max_connections": fitted.max_connections, "probe_slots": fitted.probe_slots,
                         "lowered": fitted is not limits}))
    return fitted


def protocol_for(limits: Limits) -> type[GuardedProtocol]:
    return type("ConvzooProtocol", (GuardedProtocol,), {
        "header_timeout_s": limits.header_timeout_s, "max_header_bytes": limits.max_header_bytes,
        "max_headers": limits.max_headers, "max_connections": limits.max_connections,
        "probe_slots": limits.probe_slots})


def server_config(app, host: str, port: int, limits: Limits, **options) -> uvicorn.Config:
    """The uvicorn settings of ``convzoo serve``, shared with the in-process server of tests and notebooks."""
    limits = fit_to_descriptors(limits)
    return uvicorn.Config(app, host=host, port=port, http=protocol_for(limits), timeout_keep_alive=limits.keep_alive_s,
                          server_header=False, access_log=False, **options)
