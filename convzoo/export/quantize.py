"""`convzoo quantize NAME`: onnxruntime's static INT8 quantization (QDQ), calibrated on training images.

Static QDQ, not dynamic: measured on this project's CPU, dynamic quantization made these CNNs 5-8x
slower (it quantizes activations at run time and leaves convolutions in float), while static QDQ
ran 2-3x faster. The twin is kept only if its test accuracy is within 0.3 points of FP32 and it is
faster than FP32 at batch 1 or at batch 64, timed side by side in the same run: a tiny network such as
LeNet-5 spends its time in the quantize/dequantize steps, and a slower twin is no offer.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from convzoo import registry
from convzoo.benchmark import timings_ms
from convzoo.data.idx import load_split
from convzoo.errors import ConvzooError
from convzoo.evaluation import batch_normalize, evaluate
from convzoo.packaging import provenance, update_manifest, write_model
from convzoo.registry import Store, StoredModel, publish_folder
from convzoo.runtime import cpu_session, load_model

MAX_ACCURACY_DROP = 0.003
SPEED_BATCHES = (1, 64)


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over preprocessed training images."""

    def __init__(self, input_name: str, batches: list[np.ndarray]) -> None:
        self.input_name, self.batches = input_name, iter(batches)

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {self.input_name: batch}

    def rewind(self) -> None:  # pragma: no cover - part of the protocol, unused by MinMax
        pass


def speed_ms(fp32: onnx.ModelProto, int8: onnx.ModelProto, images: np.ndarray, rounds: int = 5,
             calls: int = 20) -> dict[str, dict[str, float]]:
    """Median milliseconds per call of each model at each of ``SPEED_BATCHES``, in alternating rounds so the
    machine's noise falls on both alike."""
    sessions = {"fp32": cpu_session(fp32), "int8": cpu_session(int8)}
    result = {}
    for batch in SPEED_BATCHES:
        x = np.ascontiguousarray(np.resize(images, (batch, *images.shape[1:])), np.float32)
        times: dict[str, list[float]] = {"fp32": [], "int8": []}
        for _ in range(rounds):
            for kind, session in sessions.items():
                feed = {session.get_inputs()[0].name: x}
                times[kind] += timings_ms(lambda: session.run(None, feed), calls, warmup=3)  # noqa: B023
        result[f"batch_{batch}"] = {kind: round(float(np.median(t)), 4) for kind, t in times.items()}
    return result


def quantize(name: str, store: Store | None = None, data_dir: str | Path | None = None,
             calibration_images: int = 512, seed: int = 0, write_root: Path | None = None,
             require_speedup: bool = True) -> StoredModel:
    """Make and keep ``NAME-int8`` when it is as accurate (within 0.3 points) and faster (at batch 1 or 64);
    otherwise write nothing and say why. ``require_speedup=False`` keeps a slower twin (tests, studies)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    store = store or Store()
    base = store.get(name)
    twin_entry = registry.get(f"{name}-int8")
    model = load_model(name, store)
    if base.entry.dataset != "fashion-mnist":
        raise ConvzooError(f"quantization is calibrated on Fashion-MNIST training images; {name} is not a Fashion-MNIST model")
    pixels, _ = load_split("train", data_dir)
    chosen = np.random.default_rng(seed).choice(len(pixels), calibration_images, replace=False)
    x = batch_normalize(pixels[np.sort(chosen)], model)
    reader = _Calibration(model.input.name, [x[i:i + 32] for i in range(0, len(x), 32)])
    CalibrationDataReader.register(_Calibration)
    with tempfile.TemporaryDirectory() as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(base.onnx_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(quantized), reader, quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        reduce_range=True)  # 7-bit weights: x86 without VNNI adds u8 x s8 pairs in 16 bits, and
        # saturates with 8-bit ones (AlexNet's twin scored 0.905 there, 0.927 with VNNI); with 7 bits both agree
        int8 = onnx.load(str(quantized))
    fp32_accuracy = base.metrics.get("accuracy")
    if fp32_accuracy is None or base.metrics.get("n") != 10000:
        fp32_accuracy = evaluate(name, store=store, data_dir=data_dir)["accuracy"]
    test_data = None
    test_folder = base.folder / "test_data_set_0"
    if (test_folder / "input_0.pb").is_file():
        inputs = numpy_helper.to_array(onnx.load_tensor(str(test_folder / "input_0.pb")))
        session = cpu_session(int8)
        test_data = (inputs, session.run(None, {session.get_inputs()[0].name: inputs})[0])
    root = write_root or registry.write_root_for(base.folder.parent)  # never into the installed store
    quant_info = {"base": name, "method": "onnxruntime quantize_static, QDQ, per-channel int8 weights in 7 bits "
                  "(reduce_range: the same results with and without VNNI), uint8 activations, MinMax calibration", "calibration_images": calibration_images, "fp32_accuracy": fp32_accuracy}
    # The twin is built, evaluated and finished in a private store outside the store, and is copied in
    # by one atomic swap only once it has earned its place: a kill or a refusal leaves nothing listed.
    with tempfile.TemporaryDirectory(prefix=f"convzoo-{twin_entry.name}-") as private:
        write_model(Path(private), twin_entry, int8, metrics={}, manifest_extra={
            "quantization": quant_info, "params": base.manifest.get("params"), "macs": base.manifest.get("macs"),
            "training": base.manifest.get("training", {}), "credit": base.manifest.get("credit", "")},
            source=provenance(twin_entry, quantized_from=base.sha256,
                              **{k: v for k, v in base.manifest.get("source", {}).items() if k == "test_time"}),
            test_data=test_data)
        metrics = evaluate(twin_entry.name, store=Store(private), data_dir=data_dir)
        drop = fp32_accuracy - metrics["accuracy"]
        if drop > MAX_ACCURACY_DROP:
            raise ConvzooError(f"{twin_entry.name} was not kept: INT8 accuracy {metrics['accuracy']:.4f} is "
                               f"{drop * 100:.2f} points below FP32 {fp32_accuracy:.4f} "
                               f"(limit {MAX_ACCURACY_DROP * 100:.1f})")
        speed = speed_ms(onnx.load(str(base.onnx_path)), int8, x[:64])
        faster = [batch for batch, ms in speed.items() if ms["int8"] < ms["fp32"]]
        if require_speedup and not faster:
            timings = ", ".join(f"{b.replace('_', ' ')} {ms['int8']:.3f} vs {ms['fp32']:.3f} ms" for b, ms in speed.items())
            raise ConvzooError(f"{twin_entry.name} was not kept: INT8 is not faster than FP32 ({timings}, INT8 vs "
                               "FP32, medians side by side); FP32 is the better offer here")
        quant_info = quant_info | {"int8_accuracy": metrics["accuracy"], "accuracy_drop_points": round(drop * 100, 3),
                                   "speed_ms": speed, "faster_at": faster}
        finished = update_manifest(Store(private).get(twin_entry.name), {"quantization": quant_info})
        return publish_folder(finished.folder, root, twin_entry.name)
