"""The Gradio app: one Blocks app, a tab per demo, each tab one module with ``tab(store)``. No torch."""

from __future__ import annotations

import os

from convzoo.registry import Store

MAX_UPLOAD = "25mb"  # refused by Gradio before it reaches a tab; tabs then read it with convzoo.bounds' limits
# After every queued call, Gradio's queue re-summarises the calls it recorded (up to 10,000) with pandas for its
# /monitoring page, unless this says how many calls to wait: on the 2-CPU development machine that cost each queued
# call 1 to 2 ms of its p50 and 2 to 4 ms of its p95 (benchmarks/README.md, issue 12). Read when a queue is made.
GRADIO_ENV = {"GRADIO_ANALYTICS_CACHE_FREQUENCY": "100"}


def use_gradio_env() -> None:
    """Gradio's process-wide settings for the demo (a value already in the environment wins)."""
    for name, value in GRADIO_ENV.items():
        os.environ.setdefault(name, value)


# Calls wait in Gradio's queue, which shows each waiting page its place and an estimate of the wait. Each event runs
# one call at a time unless it says otherwise (the by-hand views run 4, Style shares one slot: issue 22); past this
# many waiting calls a new one is refused at once with Gradio's "queue is full" instead of holding its upload.
QUEUE_SIZE = 64


def queued(app):  # noqa: ANN001, ANN201 -- a gr.Blocks; gradio is imported only when the app is built
    """The app with the queue every launch uses (``convzoo demo`` and the Space)."""
    return app.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)


def launch(store: Store | None = None, host: str = "127.0.0.1", port: int = 7860, share: bool = False) -> None:
    from convzoo.demos.app import build_app

    use_gradio_env()
    queued(build_app(store or Store())).launch(server_name=host, server_port=port, share=share,
                                               max_file_size=MAX_UPLOAD)
