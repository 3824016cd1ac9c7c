"""The registry table and the on-disk store: look-up, search order, integrity, atomic writes."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from convzoo import registry, types
from convzoo.cli import main
from convzoo.errors import IntegrityError, ModelNotInStoreError, UnknownModelError
from convzoo.runtime import load_model
from tinystore import build_tiny_store, tiny_classifier


@pytest.mark.unit
def test_names_are_unique_and_valid():
    names = registry.names()
    assert len(names) == len(set(names))
    for name in names:
        registry.validate_name(name)


@pytest.mark.unit
def test_every_entry_reads_back_from_its_json_as_itself():
    for entry in registry.entries():
        assert types.ModelEntry.from_json(json.loads(json.dumps(entry.to_json()))) == entry, entry.name


@pytest.mark.unit
def test_every_shipped_manifest_holds_the_registry_entry_typed():
    store = registry.Store(registry.shipped_store())
    shipped = store.models()
    assert len(shipped) >= 10
    for stored in shipped:
        assert stored.entry == registry.get(stored.name), stored.name


@pytest.mark.unit
@pytest.mark.parametrize("change, words", [
    ({"colour": "red"}, "unknown key(s) ['colour']"),
    ({"task": "detection"}, "task must be one of"),
    ({"labels": ["only-one"]}, "labels must be two or more"),
    ({"recipe": {"epochs": 0}}, "epochs must be >= 1"),
    ({"recipe": {"epochz": 3}}, "recipe: unknown key(s) ['epochz']"),
    ({"recipe": 5}, "recipe: must be an object, got int"),
    ({"preprocess": {"color": "cmyk", "mean": [0], "std": [1]}}, "color must be"),
    ({"output": {"kind": "image"}}, "outputs 'logits', not 'image'"),
])
def test_a_malformed_entry_is_refused_with_what_is_wrong(change, words):
    data = registry.get("lenet5-fashion").to_json() | change
    with pytest.raises(types.EntryError) as caught:
        types.ModelEntry.from_json(data)
    assert words in str(caught.value)
    with pytest.raises(IntegrityError, match="invalid entry|entry.task must be"):
        registry.check_manifest("lenet5-fashion", {"name": "lenet5-fashion", "entry": data, "sha256": "0" * 64,
                                                   "size_bytes": 1})


@pytest.mark.unit
def test_every_classic_architecture_has_both_sizes():
    archs = {e.arch for e in registry.entries()}
    for arch in ("alexnet", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "googlenet", "resnet18"):
        assert arch in archs and f"{arch}_small" in archs
    assert {"lenet5", "unet", "transformer_net"} <= archs


@pytest.mark.unit
def test_heads_are_sized_by_labels():
    for entry in registry.entries():
        if entry.task == "classification":
            assert len(entry.labels) in (10, 1000), entry.name
            assert len(set(entry.labels)) == len(entry.labels), entry.name
        assert len(entry.preprocess.mean) == len(entry.preprocess.std) == entry.in_channels, entry.name


@pytest.mark.unit
def test_unknown_name_suggests_close_ones():
    with pytest.raises(UnknownModelError, match="did you mean lenet5-fashion"):
        registry.get("lenet5-fashon")


@pytest.mark.unit
@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b", "", "UPPER", ".hidden", "x" * 80])
def test_names_that_could_leave_the_store_are_refused(bad, tmp_path):
    with pytest.raises(UnknownModelError):
        registry.Store(tmp_path).find(bad)


@pytest.mark.unit
def test_preprocess_round_trips_through_json():
    for entry in registry.entries():
        again = types.Preprocess.from_json(json.loads(json.dumps(entry.preprocess.to_json())))
        assert again == entry.preprocess


@pytest.mark.unit
def test_store_search_order_first_root_wins(tmp_path):
    first, second = build_tiny_store(tmp_path / "a"), build_tiny_store(tmp_path / "b")
    both = registry.Store([first.roots[0], second.roots[0]])
    assert both.get("tiny-fashion").folder == first.roots[0] / "tiny-fashion"


@pytest.mark.unit
def test_convzoo_home_comes_first(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVZOO_HOME", str(tmp_path))
    roots = registry.default_roots()
    assert roots[0] == tmp_path and roots[-1] == registry.shipped_store()


@pytest.mark.unit
def test_missing_model_says_how_to_get_it(tmp_path):
    with pytest.raises(ModelNotInStoreError, match="convzoo train lenet5-fashion"):
        registry.Store(tmp_path).get("lenet5-fashion")


@pytest.mark.unit
def test_corrupt_file_is_refused_with_its_sha(tmp_path):
    store = build_tiny_store(tmp_path)
    path = store.get("tiny-fashion").onnx_path
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        load_model("tiny-fashion", registry.Store(tmp_path))


@pytest.mark.unit
def test_interrupted_write_leaves_the_old_model(tmp_path):
    from convzoo.packaging import write_model

    store = build_tiny_store(tmp_path)
    before = store.get("tiny-fashion").sha256
    entry = dataclasses.replace(registry.get("lenet5-fashion"), name="tiny-fashion")

    class Boom(Exception):
        pass

    def exploding_card(stored):
        raise Boom

    import convzoo.packaging

    original = convzoo.packaging.render_card
    convzoo.packaging.render_card = exploding_card
    try:
        with pytest.raises(Boom):
            write_model(tmp_path, entry, tiny_classifier(1, (28, 28), 10, seed=5), metrics={}, manifest_extra={},
                        source={})
    finally:
        convzoo.packaging.render_card = original
    again = registry.Store(tmp_path)
    assert again.get("tiny-fashion").sha256 == before
    load_model("tiny-fashion", again)  # still whole and verified
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging folders were left behind"


def test_registry_store_and_cli_list_work_without_torch(tmp_path):
    build_tiny_store(tmp_path)
    code = ("import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"
            "from convzoo import registry, cli\n"
            f"store = registry.Store({str(tmp_path)!r}); assert 'tiny-fashion' in store.names()\n"
            f"sys.exit(cli.main(['list', '--store', {str(tmp_path)!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "resnet18-fashion" in out.stdout and "googlenet-imagenet" in out.stdout


@pytest.mark.unit
def test_cli_info_and_user_errors(tmp_path, capsys):
    assert main(["info", "lenet5-fashion", "--store", str(tmp_path)]) == 0
    assert "LeCun" in capsys.readouterr().out
    assert main(["info", "no-such-model"]) == 2
    assert "no model named 'no-such-model'" in capsys.readouterr().err


@pytest.mark.unit
def test_cli_list_shows_store_contents(tmp_path, capsys):
    store = build_tiny_store(tmp_path)
    assert main(["list", "--store", str(store.roots[0]), "--task", "segmentation"]) == 0
    out = capsys.readouterr().out
    assert "unet-membranes" in out and "lenet5-fashion" not in out


def test_cli_eval_of_a_model_not_in_the_store_exits_2_without_traceback(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-m", "convzoo.cli", "eval", "lenet5-fashion", "--store", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "convzoo train lenet5-fashion" in out.stderr
