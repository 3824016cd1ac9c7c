"""Raw HTTP for the tests that send what an HTTP client will not (half headers, a million headers, ²)."""

from __future__ import annotations

import socket


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def exchange(url: str, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes; read the answer until the server closes or is silent for ``timeout``."""
    with socket.create_connection(address(url), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except OSError:  # the server answered and closed while we were still sending
            pass
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)
