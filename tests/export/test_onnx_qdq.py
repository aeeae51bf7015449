"""insert_qdq: where Q/DQ pairs sit, their scales and zero points, heads kept float, and
ONNX Runtime INT8 numerics (close to float on a ResNet-10, exact on a hand-worked conv)."""

from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from onnx_export_testing import max_scales, real_images

from tao_qat.common.errors import UsageError
from tao_qat.common.tensorflow_setup import keras
from tao_qat.export.onnx_export import convert_keras_to_onnx, export_onnx
from tao_qat.export.onnx_names import build_name_map, initializer_array
from tao_qat.export.qdq import insert_qdq, read_qdq_scales
from tao_qat.inference.onnx_predictor import OnnxPredictor


@pytest.fixture(scope="module")
def qdq_case(resnet10):
    """ResNet-10 64x96 export, its max-calibrated scales and the Q/DQ model made from them."""
    keras_model, export = resnet10
    activations, weights = max_scales(keras_model, real_images(64, 96))
    float_model = onnx.load(export.path)
    qdq_model = insert_qdq(float_model, activations, weights, export.names)
    return SimpleNamespace(
        export=export,
        names=export.names,
        float_model=float_model,
        qdq_model=qdq_model,
        activations=activations,
        weights=weights,
    )


def nodes_by_output(model):
    return {out: node for node in model.graph.node for out in node.output}


def consumers(model, tensor):
    return [node for node in model.graph.node if tensor in node.input]


def test_each_activation_tensor_feeds_one_quantize_whose_dequantize_feeds_its_consumers(
    qdq_case,
):
    export, float_model, qdq_model = qdq_case.export, qdq_case.float_model, qdq_case.qdq_model
    activations = qdq_case.activations
    for layer in activations:
        tensor = export.names.tensor(layer)
        old_users = sorted(node.name for node in consumers(float_model, tensor))
        (quantize,) = consumers(qdq_model, tensor)  # the tensor now feeds the Q only
        assert quantize.op_type == "QuantizeLinear"
        (dequantize,) = consumers(qdq_model, quantize.output[0])
        assert dequantize.op_type == "DequantizeLinear"
        assert sorted(node.name for node in consumers(qdq_model, dequantize.output[0])) == (
            old_users
        )
    # 22 activation pairs (input, 9 ReLUs, 4 Adds, 8 BNs feeding Adds) + 13 backbone kernels.
    ops = [node.op_type for node in qdq_model.graph.node]
    assert ops.count("QuantizeLinear") == ops.count("DequantizeLinear") == 22 + 13
    assert len(activations) == 22


def test_scales_are_amax_over_127_with_int8_zero_points(qdq_case):
    export, qdq_model = qdq_case.export, qdq_case.qdq_model
    activations, weights = qdq_case.activations, qdq_case.weights
    act_scales, weight_scales = read_qdq_scales(qdq_model)
    assert act_scales == {
        export.names.tensor(layer): float(np.float32(amax / 127))
        for layer, amax in activations.items()
    }
    assert set(weight_scales) == {export.names.conv_kernels[conv] for conv in weights}
    for conv, amax in weights.items():
        scale = weight_scales[export.names.conv_kernels[conv]]
        c_out = initializer_array(qdq_model, export.names.conv_kernels[conv]).shape[0]
        assert scale.shape == (c_out,) == amax.shape  # per output channel
        np.testing.assert_array_equal(scale, (amax.astype(np.float64) / 127).astype(np.float32))
    for node in qdq_model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zero_point = initializer_array(qdq_model, node.input[2])
            assert zero_point.dtype == np.int8 and not zero_point.any()
            is_weight = node.name.endswith(("/kernel_QuantizeLinear", "/kernel_DequantizeLinear"))
            axis = [a.i for a in node.attribute if a.name == "axis"]
            assert axis == ([0] if is_weight else [])


def test_no_qdq_touches_the_output_heads(qdq_case):
    export, qdq_model = qdq_case.export, qdq_case.qdq_model
    producers = nodes_by_output(qdq_model)
    for head in ("output_cov", "output_bbox"):
        conv = next(n for n in qdq_model.graph.node if n.name == export.names.conv_nodes[head])
        assert conv.input[1] == export.names.conv_kernels[head]  # float kernel, no DQ
        assert all(
            node.op_type != "QuantizeLinear" for node in consumers(qdq_model, conv.output[0])
        )
    for output in qdq_model.graph.output:
        assert producers[output.name].op_type in ("Sigmoid", "Conv")
        assert not consumers(qdq_model, output.name)


def test_graph_input_feeds_only_its_quantize_and_model_checks(qdq_case):
    qdq_model = qdq_case.qdq_model
    assert [node.op_type for node in consumers(qdq_model, "input_1")] == ["QuantizeLinear"]
    onnx.checker.check_model(qdq_model, full_check=True)
    # The name map looks through Q/DQ: same layers, same tensors, same kernels.
    export = qdq_case.export
    assert build_name_map(qdq_model) == export.names


def test_onnx_runtime_int8_outputs_stay_close_to_float(qdq_case, tmp_path):
    export, qdq_model = qdq_case.export, qdq_case.qdq_model
    onnx.save(qdq_model, tmp_path / "qdq.onnx")
    images = real_images(64, 96)
    cov_f, bbox_f = OnnxPredictor(export.path)(images)
    cov_q, bbox_q = OnnxPredictor(tmp_path / "qdq.onnx")(images)
    # Measured: cov max |diff| 0.0037, bbox |diff| / |bbox| (L2) 0.025 with these max scales;
    # bounds leave room for other seeds while still catching a wrong scale (x2 -> ~0.1+).
    assert 0 < np.abs(cov_q - cov_f).max() < 0.02
    assert 0 < np.linalg.norm(bbox_q - bbox_f) / np.linalg.norm(bbox_f) < 0.08


def test_per_tensor_weights_use_the_max_over_channels(qdq_case):
    export, float_model, weights = qdq_case.export, qdq_case.float_model, qdq_case.weights
    model = insert_qdq(float_model, {}, weights, export.names, per_channel=False)
    _, weight_scales = read_qdq_scales(model)
    scale = weight_scales[export.names.conv_kernels["conv1"]]
    assert scale.shape == () and scale == np.float32(weights["conv1"].max() / 127)
    assert not [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.attribute]


@pytest.mark.parametrize(
    ("activations", "weights", "message"),
    [
        ({"output_cov": 1.0}, {}, "activation scale 'output_cov': the output heads stay float"),
        ({}, {"output_bbox": 1.0}, "weight scale 'output_bbox': the output heads' kernels"),
        ({"nope": 1.0}, {}, "activation scale 'nope': not a layer"),
        ({"add_1": 0.0}, {}, "activation scale 'add_1': amax must be one finite number > 0"),
        ({"add_1": float("nan")}, {}, "amax must be one finite number > 0"),
        ({}, {"block_1a_relu": 1.0}, "weight scale 'block_1a_relu': not a conv layer"),
        ({}, {"conv1": np.ones(3)}, r"amax shape \(3,\) does not match the 64 output"),
        ({}, {"conv1": -np.ones(64)}, "amax must be > 0 for non-zero filters"),
    ],
)
def test_bad_scales_raise_one_line_usage_errors(qdq_case, activations, weights, message):
    export, float_model = qdq_case.export, qdq_case.float_model
    with pytest.raises(UsageError, match=message) as err:
        insert_qdq(float_model, activations, weights, export.names)
    assert "\n" not in str(err.value)


def test_inserting_twice_is_refused(qdq_case):
    qdq_model = qdq_case.qdq_model
    with pytest.raises(UsageError, match="already has a Q/DQ pair"):
        insert_qdq(qdq_model, {"add_1": 1.0}, {})
    with pytest.raises(UsageError, match="its kernel already has a Q/DQ pair"):
        insert_qdq(qdq_model, {}, {"conv1": 1.0})


# ---- exact numerics on a hand-worked 1x1 conv ------------------------------------------
# Scales are powers of two, so every product and sum is exact in float32 and ONNX Runtime
# (float conv on dequantized values, or its integer QLinearConv) must equal numpy exactly.
# input amax 127/64 -> s_in = 1/64; kernel amax (127/32, 127/16) -> s_w = (1/32, 1/16).
KERNEL = np.array([[0.5, -0.25], [0.3, 1.0]], np.float32)  # [c_in, c_out]
BIAS = np.array([0.25, -0.125], np.float32)
IMAGE = np.array(
    [[[[0.3, 0.5078125], [2.5, -2.5]], [[-0.7, 1.0], [0.0234375, -0.0078125]]]], np.float32
)


def fake_quant(x, scale):
    """Symmetric int8: clip(round_half_even(x / s), -128, 127) * s (int8_calibration.md §0)."""
    return np.clip(np.rint(x / scale), -128, 127) * scale


@pytest.fixture(scope="module")
def one_conv_keras():
    """input_1 [B, 2, 2, 2] -> conv_a (1x1, 2 filters, KERNEL, BIAS) -> relu_a."""
    inputs = keras.Input((2, 2, 2), name="input_1")
    conv = keras.layers.Conv2D(2, 1, name="conv_a")(inputs)
    model = keras.Model(inputs, keras.layers.Activation("relu", name="relu_a")(conv))
    model.get_layer("conv_a").set_weights([KERNEL.reshape(1, 1, 2, 2), BIAS])
    return model


@pytest.fixture(scope="module")
def one_conv(one_conv_keras, tmp_path_factory):
    """(float ModelProto, OnnxNames) of the one-conv model."""
    path = tmp_path_factory.mktemp("one_conv") / "one_conv.onnx"
    export = export_onnx(one_conv_keras, path)
    return onnx.load(export.path), export.names


def run_nhwc(model, image):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input_1": image.transpose(0, 3, 1, 2)})[0].transpose(0, 2, 3, 1)


def test_one_conv_int8_equals_the_numpy_simulation_exactly(one_conv):
    float_model, names = one_conv
    weights = {"conv_a": [127 / 32, 127 / 16]}
    model = insert_qdq(float_model, {"input_1": 127 / 64}, weights, names)
    # Hand-worked: x 0.3 -> 19.2 -> 19/64 = 0.296875; 0.5078125 -> 32.5 -> 32 (half to even)
    # -> 0.5; 2.5 -> 160 -> 127 -> 1.984375; -2.5 -> -160 -> -128 -> -2.0 (clamp).
    # Kernel 0.3 at s 1/32 -> 9.6 -> 10 -> 0.3125; the others are on the grid.
    x_q = fake_quant(IMAGE.astype(np.float64), 1 / 64)
    assert x_q[0, 0, 0].tolist() == [0.296875, 0.5] and x_q[0, 0, 1].tolist() == [1.984375, -2.0]
    w_q = fake_quant(KERNEL.astype(np.float64), np.array([1 / 32, 1 / 16]))
    assert w_q.tolist() == [[0.5, -0.25], [0.3125, 1.0]]
    expected = np.maximum(x_q @ w_q + BIAS, 0)
    # pixel (0, 0), channel 0: 0.296875 * 0.5 + 0.5 * 0.3125 + 0.25 = 0.5546875
    assert expected[0, 0, 0, 0] == 0.5546875
    np.testing.assert_array_equal(run_nhwc(model, IMAGE), expected.astype(np.float32))
    # The float model differs (0.3 * 0.5 + 0.5078125 * 0.3 + 0.25 = 0.55234375).
    assert run_nhwc(float_model, IMAGE)[0, 0, 0, 0] == pytest.approx(0.55234375, abs=1e-6)


def test_one_conv_with_quantized_output_runs_as_qlinearconv_and_stays_exact(one_conv, tmp_path):
    float_model, names = one_conv
    activations = {"input_1": 127 / 64, "conv_a": 127 / 8}  # conv output on a 1/8 grid
    model = insert_qdq(float_model, activations, {"conv_a": [127 / 32, 127 / 16]}, names)
    x_q = fake_quant(IMAGE.astype(np.float64), 1 / 64)
    w_q = fake_quant(KERNEL.astype(np.float64), np.array([1 / 32, 1 / 16]))
    # 0.5546875 * 8 = 4.4375 -> 4 -> 0.5; 0.30078125 * 8 = 2.40625 -> 2 -> 0.25
    expected = np.maximum(fake_quant(x_q @ w_q + BIAS, 1 / 8), 0)
    assert expected[0, 0, 0].tolist() == [0.5, 0.25]
    np.testing.assert_array_equal(run_nhwc(model, IMAGE), expected.astype(np.float32))
    # ONNX Runtime fused DQ -> Conv -> Q into an integer QLinearConv (real INT8 kernel).
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    optimized = [node.op_type for node in onnx.load(tmp_path / "optimized.onnx").graph.node]
    assert "QLinearConv" in optimized and "Conv" not in optimized


def test_zero_filters_get_a_harmless_scale(one_conv):
    float_model, names = one_conv
    zeroed = onnx.ModelProto()
    zeroed.CopyFrom(float_model)
    kernel = next(i for i in zeroed.graph.initializer if i.name == names.conv_kernels["conv_a"])
    values = numpy_helper.to_array(kernel).copy()
    values[1] = 0  # output channel 1 pruned to zeros
    kernel.CopyFrom(numpy_helper.from_array(values, kernel.name))
    model = insert_qdq(zeroed, {}, {"conv_a": [127 / 32, 0.0]}, names)
    _, weight_scales = read_qdq_scales(model)
    np.testing.assert_array_equal(
        weight_scales[names.conv_kernels["conv_a"]], np.float32([1 / 32, 1 / 127])
    )
    assert run_nhwc(model, IMAGE)[..., 1].tolist() == [[[0.0, 0.0], [0.0, 0.0]]]  # bias < 0


def test_per_channel_needs_opset_13(one_conv_keras):
    model12, names = convert_keras_to_onnx(one_conv_keras, opset=12)
    with pytest.raises(UsageError, match="ONNX opset 12: Q/DQ export needs opset >= 13"):
        insert_qdq(model12, {"input_1": 1.0}, {"conv_a": [1.0, 1.0]}, names)
    # Per-tensor Q/DQ exists since opset 10: activations and scalar weight scales are fine.
    model = insert_qdq(model12, {"input_1": 1.0}, {"conv_a": 1.0}, names, per_channel=False)
    assert [n.op_type for n in model.graph.node].count("QuantizeLinear") == 2
