"""export_onnx: TAO's NCHW layout and names, checker, parity with Keras, atomic output."""

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx_export_testing import (
    keras_outputs,
    nhwc,
    randomized_model,
    real_images,
    relative_error,
)

from tao_qat.common.errors import OutputExistsError, UsageError
from tao_qat.common.tensorflow_setup import keras, tf
from tao_qat.export.onnx_export import export_onnx


def dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def run_onnx(path, nchw):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [out.name for out in session.get_outputs()]
    return dict(zip(names, session.run(names, {"input_1": nchw}), strict=True))


def test_layout_and_names_are_taos(resnet10):
    _, export = resnet10
    model = onnx.load(export.path)
    graph = model.graph
    # 64x96 input, 2 classes: grid 64/16 x 96/16 = 4 x 6; bbox has 4 * 2 = 8 channels.
    assert [(i.name, dims(i)) for i in graph.input] == [("input_1", ["N", 3, 64, 96])]
    assert [(o.name, dims(o)) for o in graph.output] == [
        ("output_cov/Sigmoid", ["N", 2, 4, 6]),
        ("output_bbox/BiasAdd", ["N", 8, 4, 6]),
    ]
    assert {op.domain: op.version for op in model.opset_import}[""] == 13
    assert export.opset == 13 and export.static_batch_size == -1
    onnx.checker.check_model(model, full_check=True)


def test_graph_is_nchw_throughout_and_keeps_batchnorm(resnet10):
    keras_model, export = resnet10
    ops = Counter(node.op_type for node in onnx.load(export.path).graph.node)
    kinds = Counter(type(layer).__name__ for layer in keras_model.layers)
    # No layout Transpose left; every conv, BN, ReLU and Add is its own node (BN not folded,
    # ZeroPadding2D folded into the next Conv's pads).
    assert "Transpose" not in ops and "Pad" not in ops
    assert ops["Conv"] == kinds["Conv2D"] == 15
    assert ops["BatchNormalization"] == kinds["BatchNormalization"] == 13
    assert ops["Add"] == kinds["Add"] == 4
    assert ops["Relu"] == kinds["Activation"] == 9  # activation_1 + 2 per repeat
    assert ops["Sigmoid"] == 1


@pytest.mark.parametrize("case", [(10, False), (18, False), (18, True)])
def test_onnx_runtime_matches_keras_on_real_images(exported, case):
    keras_model, export = exported(*case)
    height, width, _ = keras_model.input_shape[1:]
    images = real_images(height, width)
    cov, bbox = keras_model(images, training=False)
    onnx_out = run_onnx(export.path, images.transpose(0, 3, 1, 2))
    assert relative_error(nhwc(onnx_out["output_cov/Sigmoid"]), cov.numpy()) < 1e-4
    assert relative_error(nhwc(onnx_out["output_bbox/BiasAdd"]), bbox.numpy()) < 1e-4


def test_static_batch_size_fixes_the_batch_dimension(resnet10, resnet10_static2):
    keras_model, _ = resnet10
    export = resnet10_static2
    assert export.static_batch_size == 2
    graph = onnx.load(export.path).graph
    assert dims(graph.input[0]) == [2, 3, 64, 96]
    assert [dims(o)[0] for o in graph.output] == [2, 2]
    images = real_images(64, 96)[:2]
    out = run_onnx(export.path, images.transpose(0, 3, 1, 2))
    expected = keras_outputs(keras_model, ["output_cov"], images)["output_cov"]
    assert relative_error(nhwc(out["output_cov/Sigmoid"]), expected) < 1e-4


def tiny_model(name="tiny"):
    inputs = keras.Input((4, 4, 3), name="input_1")
    x = keras.layers.Conv2D(2, 3, padding="same", name="conv_a")(inputs)
    return keras.Model(inputs, keras.layers.Activation("relu", name="relu_a")(x), name=name)


def test_refuses_to_overwrite_without_force_and_writes_atomically(tmp_path):
    model = tiny_model()
    path = tmp_path / "tiny.onnx"
    path.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="tiny.onnx: already exists"):
        export_onnx(model, path)
    assert path.read_bytes() == b"keep me"
    export = export_onnx(model, path, force=True)
    assert export.path == path and onnx.load(path).graph.input[0].name == "input_1"
    # Only the final file is left: the temp file was renamed over it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.onnx"]
    # A generic model keeps its output layer's name; graph output is the ReLU's output.
    assert [o.name for o in onnx.load(path).graph.output] == ["relu_a"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"opset": 10}, "--target_opset 10: must be >= 11"),
        ({"static_batch_size": 0}, "--static_batch_size 0: must be -1 or > 0"),
    ],
)
def test_bad_options_raise_usage_errors(tmp_path, kwargs, message):
    with pytest.raises(UsageError, match=message):
        export_onnx(tiny_model(), tmp_path / "x.onnx", **kwargs)
    assert not (tmp_path / "x.onnx").exists()


def test_fake_quant_models_are_refused(tmp_path):
    inputs = keras.Input((4, 4, 3), name="input_1")
    fake_quant = keras.layers.Lambda(
        lambda t: tf.quantization.quantize_and_dequantize_v2(
            t, -1.0, 1.0, range_given=True, narrow_range=True
        ),
        name="input_1_qdq",
    )(inputs)
    x = keras.layers.Conv2D(2, 1, name="conv_a")(fake_quant)
    model = keras.Model(inputs, x, name="qat")
    with pytest.raises(UsageError, match="has fake-quant layers"):
        export_onnx(model, tmp_path / "qat.onnx")
    assert not (tmp_path / "qat.onnx").exists()


def test_dynamic_batch_runs_any_batch_size(resnet10):
    keras_model, export = resnet10
    images = real_images(64, 96)
    for count in (1, 3):
        out = run_onnx(export.path, images[:count].transpose(0, 3, 1, 2))
        assert out["output_bbox/BiasAdd"].shape == (count, 8, 4, 6)
    np.testing.assert_allclose(
        nhwc(run_onnx(export.path, images[:1].transpose(0, 3, 1, 2))["output_cov/Sigmoid"]),
        keras_outputs(keras_model, ["output_cov"], images[:1])["output_cov"],
        rtol=1e-4,
        atol=1e-6,
    )


def test_one_class_heads_are_the_graph_outputs(tmp_path):
    # With C = 1, tf2onnx ends output_cov with a shape-keeping Reshape; the exporter drops it.
    model = randomized_model(10, (32, 32, 3), num_classes=1)
    export = export_onnx(model, tmp_path / "one_class.onnx")
    onnx_model = onnx.load(export.path)
    producers = {out: node.op_type for node in onnx_model.graph.node for out in node.output}
    assert [(o.name, dims(o)) for o in onnx_model.graph.output] == [
        ("output_cov/Sigmoid", ["N", 1, 2, 2]),
        ("output_bbox/BiasAdd", ["N", 4, 2, 2]),
    ]
    assert [producers[o.name] for o in onnx_model.graph.output] == ["Sigmoid", "Conv"]
    assert "Reshape" not in producers.values()
    assert export.names.head_layers == {"output_cov", "output_bbox"}
    images = real_images(32, 32)
    out = run_onnx(export.path, images.transpose(0, 3, 1, 2))
    cov, _ = model(images, training=False)
    assert relative_error(nhwc(out["output_cov/Sigmoid"]), cov.numpy()) < 1e-4
