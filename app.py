"""Hugging Face Space entry point: the convzoo app on the models shipped in ``models/``.

A Gradio Space runs ``python app.py`` from its root after installing ``requirements.txt`` (no torch:
demos run on onnxruntime). ``convzoo space DIR`` assembles the Space's files: this file,
``requirements.txt``, a README.md whose YAML header configures the Space (``convzoo.space.HEADER``),
``.gitattributes``, the ``convzoo/`` package and ``models/``; convzoo is imported from the folder, not
installed. Locally: ``python app.py`` or ``convzoo demo``.
"""

from __future__ import annotations

from convzoo.demos import MAX_UPLOAD, queued, use_gradio_env
from convzoo.demos.app import build_app
from convzoo.registry import Store, shipped_store

# module level, so `gradio app.py` (hot reload) finds it too
demo = build_app(Store([shipped_store()]))

if __name__ == "__main__":
    # Spaces set GRADIO_SERVER_NAME=0.0.0.0 and the port; launch() reads both from the environment
    use_gradio_env()
    queued(demo).launch(max_file_size=MAX_UPLOAD)
