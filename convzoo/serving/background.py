"""Run the service under uvicorn in a background thread: for tests, notebooks and benchmarks.

``convzoo serve`` is the way to run it for real; this is the same app and server, on a thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import uvicorn

from convzoo.errors import ConvzooError
from convzoo.serving.limits import Limits
from convzoo.serving.protocol import server_config


def wait_ready(url: str, timeout: float = 60.0, headers: dict[str, str] | None = None) -> None:
    """Poll ``/v2/health/ready`` until it answers 200, or fail with the server's last word."""
    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{url}/v2/health/ready", headers=headers or {}),
                                        timeout=5) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as e:
            last = e.read().decode(errors="replace")
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    raise ConvzooError(f"{url} was not ready after {timeout:.0f} s: {last}")


@contextlib.contextmanager
def running(app, host: str = "127.0.0.1", port: int = 0, *, ready: bool = True, timeout: float = 60.0,
            graceful_s: float = 10.0) -> Iterator[str]:
    """Serve ``app`` on ``host:port`` (0: a free port) in a thread; yield its URL; stop it afterwards."""

    limits = getattr(app.state, "limits", None) or Limits()
    config = server_config(app, host, port, limits, log_level="warning", timeout_graceful_shutdown=graceful_s,
                           lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="convzoo-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ConvzooError(f"the server on {host}:{port} did not start (is the port free?)")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://{host}:{bound}"
    try:
        if ready:
            wait_ready(url, timeout=max(1.0, deadline - time.monotonic()))
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=graceful_s + 5)
