"""Hub-ready cards, and `convzoo push` / `convzoo pull` through huggingface_hub (offline: a cache the test builds)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from convzoo import hub, tasks
from convzoo.card import EVAL_METRICS, render_card
from convzoo.errors import IntegrityError
from convzoo.registry import Store, shipped_store

SHIPPED = Store(shipped_store())
NO_TORCH = "import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"


@pytest.mark.parametrize("name", SHIPPED.names())
def test_every_shipped_card_is_hub_ready_and_reports_the_manifest_metrics(name):
    stored = SHIPPED.get(name)
    card = ModelCard.load(stored.card_path)
    entry, metrics = stored.manifest["entry"], stored.manifest.get("metrics", {})
    assert card.data.license == "mit"
    assert card.data.library_name == "onnx"
    assert card.data.pipeline_tag == tasks.get(entry["task"]).pipeline_tag
    reported = {(r.metric_type, r.metric_value, r.dataset_split, r.task_type) for r in card.data.eval_results or []}
    expected = {(key, metrics[key], metrics.get("split", "test"), tasks.get(entry["task"]).pipeline_tag)
                for key in EVAL_METRICS if isinstance(metrics.get(key), (int, float))}
    assert reported == expected
    if entry["task"] != "style":  # every classifier and the U-Net were evaluated on real data
        assert reported
    assert card.content == render_card(stored), f"{name}: the card is stale; run `convzoo card {name} --store models`"


def test_the_card_check_runs_without_torch(tmp_path):
    code = NO_TORCH + ("from huggingface_hub import ModelCard\nfrom convzoo.registry import Store, shipped_store\n"
                       "card = ModelCard.load(Store(shipped_store()).get('lenet5-fashion').card_path)\n"
                       "print(card.data.eval_results[0].metric_value)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert float(out) == SHIPPED.get("lenet5-fashion").manifest["metrics"]["accuracy"]


# ----------------------------------------------------------------------------------------------
# pull: the real snapshot_download path, offline, against a Hugging Face cache laid out by the test


def hub_cache(cache: Path, repo_id: str, source: Path, commit: str = "0" * 39 + "1") -> Path:
    """A Hugging Face hub cache holding ``repo_id`` at ``main`` with the files of ``source``, as the Hub's
    own download writes it (refs/main names the commit; snapshots/COMMIT holds the files)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(source, repo / "snapshots" / commit)
    return repo / "snapshots" / commit


def convzoo(args, env, **kwargs):
    return subprocess.run([sys.executable, "-c", NO_TORCH + "from convzoo.cli import main; sys.exit(main())", *args],
                          capture_output=True, text=True, env=env, **kwargs)


@pytest.fixture
def offline(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hf"), CONVZOO_HOME=str(tmp_path / "store"),
               HF_HUB_DISABLE_TELEMETRY="1")
    return env


def test_pull_installs_a_verified_model_from_the_hub_cache(tmp_path, offline):
    hub_cache(tmp_path / "hf", "someone/lenet5-fashion", SHIPPED.get("lenet5-fashion").folder)
    result = convzoo(["pull", "someone/lenet5-fashion"], offline)
    assert result.returncode == 0, result.stderr
    stored = Store(tmp_path / "store").get("lenet5-fashion")
    stored.verify()
    assert stored.sha256 == SHIPPED.get("lenet5-fashion").sha256
    assert not (stored.folder / "model.onnx").is_symlink()  # a copy, not a link into the Hub cache
    listed = convzoo(["list", "--store", str(tmp_path / "store")], offline)
    assert "lenet5-fashion" in listed.stdout


def test_a_tampered_download_never_enters_the_store(tmp_path, offline):
    snapshot = hub_cache(tmp_path / "hf", "someone/lenet5-fashion", SHIPPED.get("lenet5-fashion").folder)
    data = bytearray((snapshot / "model.onnx").read_bytes())
    data[-100] ^= 0xFF
    (snapshot / "model.onnx").write_bytes(bytes(data))
    result = convzoo(["pull", "someone/lenet5-fashion"], offline)
    assert result.returncode == 2
    assert "sha256" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").iterdir())


def test_a_repository_that_is_not_a_convzoo_model_is_refused(tmp_path, offline):
    not_ours = tmp_path / "not-ours"
    not_ours.mkdir()
    (not_ours / "README.md").write_text("# a text model\n")
    hub_cache(tmp_path / "hf", "someone/bert", not_ours)
    result = convzoo(["pull", "someone/bert"], offline)
    assert result.returncode == 2 and "not a convzoo model repository" in result.stderr
    manifest_lies = tmp_path / "lies"
    shutil.copytree(SHIPPED.get("lenet5-fashion").folder, manifest_lies)
    manifest = json.loads((manifest_lies / "model.json").read_text())
    (manifest_lies / "model.json").write_text(json.dumps(manifest | {"name": "../../etc"}))
    hub_cache(tmp_path / "hf", "someone/escape", manifest_lies)
    result = convzoo(["pull", "someone/escape"], offline)
    assert result.returncode == 2 and "is not a model name" in result.stderr
    assert not (tmp_path / "etc").exists()


def test_offline_without_the_model_in_cache_says_so(tmp_path, offline):
    result = convzoo(["pull", "someone/absent"], offline)
    assert result.returncode == 2
    assert "not in the local Hugging Face cache" in result.stderr and "Traceback" not in result.stderr
    result = convzoo(["pull", "no-slash"], offline)
    assert result.returncode == 2 and "ORG/NAME" in result.stderr


# ----------------------------------------------------------------------------------------------
# push: no network here, so the Hub API is a recorder; what it is asked to upload is checked


class RecordingHub:
    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))


def test_push_uploads_the_verified_folder_with_its_card(tmp_path):
    api = RecordingHub()
    url = hub.push("lenet5-fashion", "someone/lenet5-fashion", store=SHIPPED, api=api)
    assert url == "https://huggingface.co/someone/lenet5-fashion"
    (_, repo_id, create), (_, upload) = api.calls
    assert repo_id == "someone/lenet5-fashion" and create["exist_ok"] and create["repo_type"] == "model"
    assert Path(upload["folder_path"]) == SHIPPED.get("lenet5-fashion").folder
    assert set(hub.MODEL_FILES) == set(upload["allow_patterns"])
    assert SHIPPED.get("lenet5-fashion").sha256[:12] in upload["commit_message"]


def test_push_refuses_a_corrupt_model_before_any_upload(tmp_path):
    shutil.copytree(SHIPPED.get("lenet5-fashion").folder, tmp_path / "lenet5-fashion")
    with open(tmp_path / "lenet5-fashion" / "model.onnx", "ab") as f:
        f.write(b"\0")
    api = RecordingHub()
    with pytest.raises(IntegrityError, match="sha256"):
        hub.push("lenet5-fashion", "someone/lenet5-fashion", store=Store(tmp_path), api=api)
    assert api.calls == []
