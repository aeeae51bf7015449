"""Helpers for the ``qat export`` tests: in-process CLI runner, randomised weights, the real
calibration photos, ONNX Runtime outputs in NHWC."""

import contextlib
import io
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parents[1]
IMAGE_DIR = TESTS / "data" / "people_vehicles" / "image_2"  # 4 real photos
SIZE = 64
EXPORT_COMMAND = "tao_qat.cli.export:export"


def run_cli(*args):
    """Run ``qat <args>`` in-process; return (exit code, stdout, stderr). Usable from
    module-scoped fixtures (no capsys)."""
    from tao_qat.cli import main

    main.COMMANDS.setdefault("export", EXPORT_COMMAND)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def randomize(model, seed=0):
    """Non-zero conv biases and BN statistics, so a wrong mapping or a lost BN shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        kind = type(layer).__name__
        weights = layer.get_weights()
        if kind == "Conv2D":
            layer.set_weights([weights[0], rng.normal(0, 0.1, weights[1].shape).astype("f4")])
        elif "BatchNormalization" in kind:
            shape = weights[0].shape
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, shape).astype("f4"),
                    rng.normal(0, 0.1, shape).astype("f4"),
                    rng.normal(0, 0.1, shape).astype("f4"),
                    rng.uniform(0.5, 2.0, shape).astype("f4"),
                ]
            )
    return model


def real_images():
    """The 4 photos resized like ``qat export --cal_image_dir``: float32 [4, 64, 64, 3]."""
    from tao_qat.inference.run_inference import list_images, load_image

    return np.stack([load_image(p, (SIZE, SIZE))[0] for p in list_images(IMAGE_DIR)])


def load_onnx(path, key=None):
    """onnx.ModelProto of an exported (maybe encrypted) file."""
    import onnx

    from tao_qat.common.crypto import load_bytes

    return onnx.load_from_string(load_bytes(path, key))


def ort_outputs(model_or_path, images):
    """(cov, bbox) NHWC numpy outputs of an ONNX model (path or ModelProto) on NHWC images."""
    import onnxruntime as ort

    source = model_or_path
    if not isinstance(model_or_path, str | Path):
        source = model_or_path.SerializeToString()
    session = ort.InferenceSession(
        str(source) if isinstance(source, Path) else source, providers=["CPUExecutionProvider"]
    )
    cov, bbox = session.run(
        ["output_cov/Sigmoid", "output_bbox/BiasAdd"],
        {"input_1": np.ascontiguousarray(images.transpose(0, 3, 1, 2))},
    )
    return cov.transpose(0, 2, 3, 1), bbox.transpose(0, 2, 3, 1)


def keras_outputs(model, images):
    """(cov, bbox) numpy outputs of a Keras model in inference mode."""
    cov, bbox = model(images, training=False)
    return np.asarray(cov), np.asarray(bbox)


def graph_tensors(onnx_model):
    """Graph inputs and every tensor a node produces."""
    graph = onnx_model.graph
    return {i.name for i in graph.input} | {o for n in graph.node for o in n.output if o}


def staging_leftovers(folder):
    """Hidden staging folders left in ``folder`` (must be none after any run)."""
    return sorted(p.name for p in Path(folder).glob(".qat_export_*"))
