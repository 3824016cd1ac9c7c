"""The Python API at the top (`convzoo.list_models`, `convzoo.load`), and the README's examples of it, without torch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

import convzoo
from convzoo.errors import BadInputError, ModelNotInStoreError
from convzoo.registry import Store, shipped_store

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "convzoo" / "assets" / "fashion_examples").glob("*.png"))
SECTIONS = sorted((ROOT / "convzoo" / "assets" / "membranes").glob("*.png"))
SHIPPED = Store(shipped_store())
NO_TORCH = "import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"


def plain_onnxruntime_label(path: Path, onnx_file: Path) -> str:
    """The label a user gets with onnxruntime and the file's own metadata, written out independently of convzoo."""
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    pre = json.loads(meta["convzoo.preprocess"])
    image = Image.open(path).convert("L" if pre["color"] == "gray" else "RGB").resize(pre["size"][::-1],
                                                                                       Image.Resampling.BILINEAR)
    x = np.asarray(image, np.float32).reshape(image.height, image.width, -1).transpose(2, 0, 1)[None]
    x = (x * pre["scale"] - np.array(pre["mean"], np.float32)[:, None, None]) / np.array(pre["std"], np.float32)[:, None, None]
    logits = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]
    return json.loads(meta["convzoo.labels"])[int(logits.argmax())]


def test_list_models_names_what_load_can_open():
    assert convzoo.list_models(store=SHIPPED) == SHIPPED.names()
    assert convzoo.list_models("segmentation", store=SHIPPED) == ["unet-membranes"]
    assert set(convzoo.list_models("style", store=SHIPPED)) == {n for n in SHIPPED.names() if n.startswith("style-")}
    with pytest.raises(BadInputError, match="task must be one of"):
        convzoo.list_models("detection")


@pytest.mark.parametrize("name", ["lenet5-fashion", "resnet18-fashion"])
def test_a_classifier_predicts_as_plain_onnxruntime_does_from_a_path_an_image_or_an_array(name):
    model = convzoo.load(name, store=SHIPPED)
    agree, correct = 0, 0
    for path in EXAMPLES:
        result = model.predict(path)
        assert isinstance(result, convzoo.Classification)
        assert result.label == result.top_k[0].label and len(result.top_k) == 5
        assert [p.probability for p in result.top_k] == sorted((p.probability for p in result.top_k), reverse=True)
        assert abs(float(result.probabilities.sum()) - 1) < 1e-4
        with Image.open(path) as image:
            assert model.predict(image).label == result.label
            assert model.predict(np.asarray(image)).label == result.label
        agree += result.label == plain_onnxruntime_label(path, SHIPPED.get(name).onnx_path)
        correct += result.label.lower().replace("/", "-").replace(" ", "-") in path.stem
    assert agree == len(EXAMPLES)
    assert correct >= 0.8 * len(EXAMPLES)  # real test images, named by their true class


def test_a_segmenter_returns_a_mask_at_the_images_size():
    model = convzoo.load("unet-membranes", store=SHIPPED)
    result = model.predict(SECTIONS[0])
    assert isinstance(result, convzoo.Segmentation)
    with Image.open(SECTIONS[0]) as image:
        assert result.mask.shape == (image.height, image.width)
    assert result.probabilities.shape == (2, *result.mask.shape)
    np.testing.assert_array_equal(result.mask, result.probabilities.argmax(0))
    fractions = result.fractions()
    assert set(fractions) == {"membrane", "cell"} and abs(sum(fractions.values()) - 1) < 1e-9
    assert 0.05 < fractions["membrane"] < 0.5  # EM sections are mostly cell interior
    assert result.mask_image().size == (result.mask.shape[1], result.mask.shape[0])


def test_a_style_net_returns_an_image():
    model = convzoo.load("style-starry-night", store=SHIPPED)
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), np.uint8))
    result = model.predict(photo, max_side=64)
    assert isinstance(result, convzoo.Stylized)
    assert result.image.mode == "RGB" and max(result.image.size) == 64


def test_bad_input_gets_a_sentence(tmp_path):
    model = convzoo.load("lenet5-fashion", store=SHIPPED)
    with pytest.raises(BadInputError, match="no such file"):
        model.predict(tmp_path / "absent.png")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(BadInputError, match="not an image"):
        model.predict(tmp_path / "notes.txt")
    (tmp_path / "cut.png").write_bytes(EXAMPLES[0].read_bytes()[:200])
    with pytest.raises(BadInputError, match="truncated or corrupt"):
        model.predict(tmp_path / "cut.png")
    with pytest.raises(BadInputError, match="uint8"):
        model.predict(np.zeros((28, 28), np.float32))
    with pytest.raises(BadInputError, match="file path, a PIL image or a uint8 array"):
        model.predict(42)
    with pytest.raises(ModelNotInStoreError, match="did you mean lenet5-fashion"):
        convzoo.load("lenet5-fashon", store=SHIPPED)


def test_load_shares_one_session_per_file_and_threads():
    assert convzoo.load("lenet5-fashion", store=SHIPPED).onnx is convzoo.load("lenet5-fashion", store=SHIPPED).onnx
    assert convzoo.load("lenet5-fashion", threads=1, store=SHIPPED).onnx is not \
        convzoo.load("lenet5-fashion", store=SHIPPED).onnx


def readme_section(title: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readme_api_examples_run_as_written_without_torch():
    blocks = readme_section("Python API")
    assert blocks, "README.md has a '## Python API' section with python examples"
    for code in blocks:
        result = subprocess.run([sys.executable, "-c", NO_TORCH + code], cwd=ROOT, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, f"README example failed:\n{code}\n{result.stderr[-2000:]}"
        assert result.stdout.strip(), f"README example printed nothing:\n{code}"


def test_import_convzoo_loads_no_onnxruntime_until_the_api_is_used():
    code = ("import sys, convzoo, convzoo.registry, convzoo.zoo\n"
            "assert 'onnxruntime' not in sys.modules\n"
            "convzoo.list_models\nassert 'onnxruntime' in sys.modules\n"
            "try:\n    convzoo.nothing\nexcept AttributeError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", NO_TORCH + code], capture_output=True, text=True, check=True).stdout
    assert "no attribute 'nothing'" in out
