"""The Gradio app: one Blocks app, a tab per demo, each tab one module with ``tab(store)``. No torch."""

from __future__ import annotations

from convzoo.registry import Store

MAX_UPLOAD = "25mb"  # refused by Gradio before it reaches a tab; tabs also check pixel counts


def launch(store: Store | None = None, host: str = "127.0.0.1", port: int = 7860, share: bool = False) -> None:
    from convzoo.demos.app import build_app

    build_app(store or Store()).queue().launch(server_name=host, server_port=port, share=share,
                                                   max_file_size=MAX_UPLOAD)
