"""Models to and from the Hugging Face Hub: ``convzoo push NAME --repo ORG/NAME``, ``convzoo pull ORG/NAME``.

A model folder is a Hub model repository as it stands: ``model.onnx``, ``model.json`` (the manifest,
with the file's sha256), ``README.md`` (the card, whose front matter the Hub reads) and its pictures.
A pull downloads through ``huggingface_hub.snapshot_download`` (its cache, ``HF_HUB_OFFLINE`` and
``HF_TOKEN`` work as everywhere), then checks the manifest schema and the sha256 before the model
enters the store, in one atomic swap: a tampered or truncated download never becomes a model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                    RevisionNotFoundError)

from convzoo.errors import ConvzooError, IntegrityError
from convzoo.registry import MANIFEST_FILE, Store, StoredModel, publish_folder, validate_name, write_root

MODEL_FILES = ["model.onnx", "model.json", "README.md", "*.png", "test_data_set_0/*"]  # nothing else is fetched


class HubError(ConvzooError):
    """The Hub refused, or could not be reached; the message says which and what to do."""


def _hub_error(repo_id: str, e: Exception) -> HubError:
    if isinstance(e, (RepositoryNotFoundError, GatedRepoError)):
        return HubError(f"{repo_id}: no such model repository, or it is private or gated; check the name, or log in "
                        "(`hf auth login` or $HF_TOKEN)")
    if isinstance(e, RevisionNotFoundError):
        return HubError(f"{repo_id}: no such revision; leave --revision out for the newest")
    if isinstance(e, LocalEntryNotFoundError):
        return HubError(f"{repo_id}: not in the local Hugging Face cache and the Hub cannot be reached (offline, "
                        "or HF_HUB_OFFLINE=1); connect, or pull it once where the Hub is reachable")
    return HubError(f"{repo_id}: the Hub answered {e}")


def check_repo_id(repo_id: str) -> str:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts):
        raise HubError(f"{repo_id!r} is not a Hub repository id; give it as ORG/NAME, e.g. convzoo/lenet5-fashion")
    return repo_id


def push(name: str, repo_id: str, store: Store | None = None, private: bool = False, api: Any = None) -> str:
    """Upload a stored model's folder to the Hub model repository ``repo_id`` (created when missing);
    the file is verified against its sha256 first, so a corrupt model is never published. Returns its URL."""
    check_repo_id(repo_id)
    stored = (store if store is not None else Store()).get(name)
    stored.verify()
    api = api if api is not None else HfApi()
    try:
        url = api.create_repo(repo_id, repo_type="model", exist_ok=True, private=private)
        api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(stored.folder),
                          allow_patterns=MODEL_FILES,
                          commit_message=f"{name}: model.onnx sha256 {stored.sha256[:12]} (convzoo push)")
    except HfHubHTTPError as e:
        raise _hub_error(repo_id, e) from None
    return str(url)


def pull(repo_id: str, revision: str | None = None, root: Path | None = None) -> StoredModel:
    """Download the Hub model ``repo_id`` and install it in ``root`` (default: the user store) under the name
    in its manifest, once the manifest schema and the sha256 of ``model.onnx`` check out."""
    check_repo_id(repo_id)
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, repo_type="model", allow_patterns=MODEL_FILES))
    except (HfHubHTTPError, LocalEntryNotFoundError) as e:
        raise _hub_error(repo_id, e) from None
    manifest_path = folder / MANIFEST_FILE
    try:
        name = json.loads(manifest_path.read_text())["name"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise IntegrityError(f"{repo_id}: {MANIFEST_FILE} is missing or unreadable ({e}); it is not a convzoo model "
                             "repository") from None
    validate_name(name)
    # publish_folder checks the schema and the sha256 in its staging folder, before the one swap
    return publish_folder(folder, root if root is not None else write_root(), name)
