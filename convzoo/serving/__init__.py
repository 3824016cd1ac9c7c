"""The HTTP inference service (KServe v2 / Open Inference Protocol + image endpoints); no torch.

`convzoo serve` runs :func:`serve`; :func:`create_app` gives the ASGI app for tests or another server.
"""

from convzoo.serving.app import ServeConfig, create_app, serve

__all__ = ["ServeConfig", "create_app", "serve"]
