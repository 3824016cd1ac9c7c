"""The Gradio app: one Blocks app, a tab per demo, each tab one module with ``tab(store)``. No torch."""

from __future__ import annotations

import os

from convzoo.registry import Store

MAX_UPLOAD = "25mb"  # refused by Gradio before it reaches a tab; tabs also check pixel counts
# After every queued call, Gradio's queue re-summarises the calls it recorded (up to 10,000) with pandas for its
# /monitoring page, unless this says how many calls to wait: on the 2-CPU development machine that cost each queued
# call 1 to 2 ms of its p50 and 2 to 4 ms of its p95 (benchmarks/README.md, issue 12). Read when a queue is made.
GRADIO_ENV = {"GRADIO_ANALYTICS_CACHE_FREQUENCY": "100"}


def use_gradio_env() -> None:
    """Gradio's process-wide settings for the demo (a value already in the environment wins)."""
    for name, value in GRADIO_ENV.items():
        os.environ.setdefault(name, value)


def launch(store: Store | None = None, host: str = "127.0.0.1", port: int = 7860, share: bool = False) -> None:
    from convzoo.demos.app import build_app

    use_gradio_env()
    build_app(store or Store()).queue().launch(server_name=host, server_port=port, share=share,
                                                   max_file_size=MAX_UPLOAD)
