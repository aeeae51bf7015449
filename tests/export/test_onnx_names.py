"""onnx_names: every conv / BN / ReLU / Add / input maps to a real tensor carrying its values."""

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx_export_testing import keras_outputs, nhwc, real_images, relative_error

from tao_qat.common.errors import UsageError
from tao_qat.common.tensorflow_setup import keras
from tao_qat.export.onnx_export import export_onnx
from tao_qat.export.onnx_names import (
    build_name_map,
    expose_tensors,
    initializer_array,
    tensor_for_layer,
)

MAPPED = (keras.layers.InputLayer, keras.layers.Conv2D, keras.layers.BatchNormalization)
MAPPED += (keras.layers.Activation, keras.layers.ReLU, keras.layers.Add)


def graph_tensors(model):
    produced = {out for node in model.graph.node for out in node.output}
    return produced | {inp.name for inp in model.graph.input}


@pytest.mark.parametrize("case", [(10, False), (18, False), (18, True)])
def test_every_conv_bn_relu_add_and_input_maps_to_a_distinct_graph_tensor(exported, case):
    keras_model, export = exported(*case)
    model = onnx.load(export.path)
    layers = [layer.name for layer in keras_model.layers if isinstance(layer, MAPPED)]
    tensors = [tensor_for_layer(model, name) for name in layers]
    assert set(tensors) <= graph_tensors(model)
    assert len(set(tensors)) == len(layers)  # no two layers share a tensor
    # ResNet-18: 23 convs, 21 BNs (heads have none), 1 + 2 * 8 ReLUs, 8 Adds, the input;
    # all_projections adds a 1x1 conv + BN on the 4 identity shortcuts.
    expected = {(10, False): 15 + 13 + 9 + 4 + 1, (18, False): 23 + 21 + 17 + 8 + 1}
    expected[(18, True)] = expected[(18, False)] + 8
    assert len(layers) == expected[case]


def test_tensor_names_follow_tf_op_names(resnet10):
    _, export = resnet10
    names = export.names
    assert names.tensor("input_1") == "input_1"
    assert names.tensor("conv1") == "conv1/BiasAdd:0"  # ZeroPadding2D + Conv merged, renamed
    assert names.tensor("bn_conv1") == "bn_conv1/FusedBatchNormV3:0"
    assert names.tensor("activation_1") == "activation_1/Relu:0"
    assert names.tensor("block_1a_relu_1") == "block_1a_relu_1/Relu:0"
    assert names.tensor("add_1") == "add_1/add:0"
    assert names.tensor("output_cov") == "output_cov/Sigmoid"
    assert names.tensor("output_bbox") == "output_bbox/BiasAdd"
    assert names.head_layers == {"output_cov", "output_bbox"}
    assert names.conv_kernels["conv1"] == "conv1/Conv2D/ReadVariableOp:0"


def test_mapped_tensors_carry_the_keras_layer_values(resnet10):
    keras_model, export = resnet10
    layers = [
        "conv1",
        "bn_conv1",
        "activation_1",
        "block_1a_conv_shortcut",
        "block_1a_bn_2",
        "add_1",
        "block_2a_relu_1",
        "block_3a_conv_2",
        "block_4a_relu",
    ]
    model = onnx.load(export.path)
    tensors = [tensor_for_layer(export, name) for name in layers]
    session = ort.InferenceSession(
        expose_tensors(model, tensors).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    images = real_images(64, 96)
    onnx_values = session.run(tensors, {"input_1": images.transpose(0, 3, 1, 2)})
    expected = keras_outputs(keras_model, layers, images)
    for name, value in zip(layers, onnx_values, strict=True):
        assert value.shape == tuple(np.array(expected[name].shape)[[0, 3, 1, 2]]), name
        assert relative_error(nhwc(value), expected[name]) < 1e-4, name


def test_conv_kernels_are_the_keras_kernels_in_oihw(resnet10):
    keras_model, export = resnet10
    model = onnx.load(export.path)
    for layer in ("conv1", "block_2a_conv_shortcut", "output_bbox"):
        kernel = keras_model.get_layer(layer).get_weights()[0]  # HWIO
        onnx_kernel = initializer_array(model, export.names.conv_kernels[layer])
        np.testing.assert_array_equal(onnx_kernel, kernel.transpose(3, 2, 0, 1))
        conv = next(n for n in model.graph.node if n.name == export.names.conv_nodes[layer])
        assert conv.op_type == "Conv" and conv.input[1] == export.names.conv_kernels[layer]


def test_tensor_for_layer_accepts_model_map_export_and_dict(resnet10):
    _, export = resnet10
    model = onnx.load(export.path)
    for source in (model, export, export.names, dict(export.names.layer_tensors)):
        assert tensor_for_layer(source, "add_2") == "add_2/add:0"
    assert build_name_map(model) == export.names


@pytest.mark.parametrize("layer", ["conv1_pad", "no_such_layer"])
def test_layers_without_a_tensor_raise_one_line_usage_errors(resnet10, layer):
    _, export = resnet10
    with pytest.raises(UsageError, match=f"layer '{layer}': no tensor of its own") as err:
        tensor_for_layer(export, layer)
    assert "\n" not in str(err.value)


def test_expose_tensors_refuses_unknown_tensors(resnet10):
    _, export = resnet10
    with pytest.raises(UsageError, match="tensor 'nope:0' is not produced"):
        expose_tensors(onnx.load(export.path), ["nope:0"])


TF_FREE = """
import sys
sys.modules["tensorflow"] = None
import onnx
from tao_qat.export import onnx_names, qdq
from tao_qat.inference import onnx_predictor
names = onnx_names.build_name_map(onnx.load(sys.argv[1]))
predictor = onnx_predictor.OnnxPredictor(sys.argv[1])
print(names.tensor("add_1"), predictor.input_shape,
      sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras", "tf2onnx")
             and sys.modules[m] is not None))
"""


def test_names_qdq_and_predictor_run_without_tensorflow(resnet10):
    _, export = resnet10
    done = subprocess.run(
        [sys.executable, "-c", TF_FREE, str(export.path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "add_1/add:0 (64, 96, 3) []"


def test_relu6_layers_map_to_their_clip_outputs(tmp_path):
    # QAT models keep ReLU6 (TAO §6); tf2onnx writes Clip(0, 6) under the layer's scope.
    inputs = keras.Input((8, 8, 3), name="input_1")
    x = keras.layers.ZeroPadding2D(1, name="conv_a_pad")(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, name="conv_a")(x)
    x = keras.layers.ReLU(max_value=6.0, name="relu_a")(x)
    x = keras.layers.Add(name="add_1")([x, keras.layers.Conv2D(4, 1, name="conv_b")(x)])
    x = keras.layers.ReLU(max_value=6.0, name="relu_b")(x)
    model = keras.Model(inputs, keras.layers.Conv2D(4, 1, name="output_bbox")(x), name="r6")
    export = export_onnx(model, tmp_path / "relu6.onnx")
    layers = ["conv_a", "relu_a", "conv_b", "add_1", "relu_b"]
    tensors = [export.names.tensor(name) for name in layers]
    # Fresh zero biases: tf2onnx drops the BiasAdd and the Conv keeps TF's Conv2D name.
    assert tensors == [
        "conv_a/Conv2D:0",
        "relu_a/Relu6:0",
        "conv_b/Conv2D:0",
        "add_1/add:0",
        "relu_b/Relu6:0",
    ]
    images = np.random.default_rng(1).uniform(0, 8, (2, 8, 8, 3)).astype(np.float32)
    session = ort.InferenceSession(
        expose_tensors(onnx.load(export.path), tensors).SerializeToString(),
        providers=["CPUExecutionProvider"],
    )
    values = session.run(tensors, {"input_1": images.transpose(0, 3, 1, 2)})
    expected = keras_outputs(model, layers, images)
    for name, value in zip(layers, values, strict=True):
        assert relative_error(nhwc(value), expected[name]) < 1e-5, name
    assert expected["relu_a"].max() == 6.0  # the clip is exercised
