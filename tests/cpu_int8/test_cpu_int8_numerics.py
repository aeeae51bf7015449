"""CPU INT8 numbers: a hand-worked conv (fold, grids, bias, fused ReLU, QAT weight grid), and
outputs close to FP32 on real photos with PTQ scales from ``ptq.calibrate_onnx``."""

import numpy as np
import pytest
from cpu_int8_testing import one_conv_model
from onnx import TensorProto, helper, numpy_helper

from tao_qat.export.cpu_int8 import quantize_for_onnxruntime
from tao_qat.export.cpu_int8_runtime import count_kernels, make_session
from tao_qat.export.ptq import layer_amax

X = np.array([0.1, 0.5, 0.7, 0.99], np.float32).reshape(1, 1, 1, 4)
# Power-of-two grids: input [0, 255/256] on 255 levels -> s_in = 1/256 (uint8, zp 0);
# ReLU output [0, 255/512] -> s_out = 1/512.
AMAX = {"input_1": 255 / 256, "relu": 255 / 512}


def initializer(model, name):
    return next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name == name)


def run(model, level="all"):
    return make_session(model, 1, level=level).run(None, {"input_1": X})


@pytest.mark.parametrize("activation_type", ["uint8", "int8"])
@pytest.mark.parametrize("level", ["all", "basic"])  # fused QLinearConv / plain Q-DQ graph
def test_hand_worked_conv_bn_relu(activation_type, level):
    # Folded conv: W' = 0.5 * 2 = 1, b' = (0.25 - 0.25) * 2 - 0.5 = -0.5, so relu(x - 0.5).
    # Weights: amax 1 -> s_w = 1/127, q_w = 127. Bias: s_b = s_in s_w, q_b = -0.5 * 256 * 127
    # = -16256. q_x = round(256 x) = 26, 128, 179, 253; accumulator 127 q_x - 16256 in units
    # of s_in s_w; output q = acc * (s_in s_w / s_out) = 2 q_x - 256 = -204, 0, 102, 250,
    # clamped at 0 by the Q (the ReLU is gone): 0, 0, 102/512, 250/512.
    model = quantize_for_onnxruntime(one_conv_model(), AMAX, activation_type=activation_type)
    assert "Relu" not in [node.op_type for node in model.graph.node]
    assert initializer(model, "conv/kernel_quantized").reshape(-1).tolist() == [127]
    assert initializer(model, "conv/bias_quantized").tolist() == [-16256]
    cov, bbox = run(model, level)
    expected = np.array([0, 0, 102, 250]) / 512
    np.testing.assert_allclose(bbox.reshape(-1), expected, atol=1e-7)
    np.testing.assert_allclose(cov.reshape(-1), 1 / (1 + np.exp(-expected)), atol=1e-6)
    if activation_type == "uint8" and level == "all":
        kernels = count_kernels(model, 1)
        assert (kernels.integer_convs, kernels.float_convs) == (1, 2)


def test_qat_weight_amax_is_scaled_by_the_bn_factor():
    # QAT fake-quantized the unfolded W = 0.5 with amax 1: round(0.5 * 127) = round(63.5) = 64
    # (half to even), i.e. 64/127. Folded: amax 1 * |f| = 2, s_w = 2/127, q_w = round(63.5)
    # = 64 again: the same grid point, times f. Bias: s_b = 2/(256*127), q_b = -8128.
    # Output q = (64 q_x - 8128) * 4/127 for q_x = 26, 128, 179, 253: -203.6 -> 0 (clamp),
    # 2.02 -> 2, 104.8 -> 105, 253.98 -> 254.
    model = quantize_for_onnxruntime(one_conv_model(), AMAX, {"conv": 1.0})
    assert initializer(model, "conv/kernel_quantized").reshape(-1).tolist() == [64]
    np.testing.assert_allclose(initializer(model, "conv/kernel_scale"), [2 / 127], rtol=1e-7)
    assert initializer(model, "conv/bias_quantized").tolist() == [-8128]
    _, bbox = run(model)
    np.testing.assert_allclose(bbox.reshape(-1), np.array([0, 2, 105, 254]) / 512, atol=1e-7)


def test_per_channel_qat_amax_of_the_kernel_gives_the_max_abs_weight_grid(resnet10_case):
    # amax = max |W_c| of the unfolded kernel scaled by |f_c| equals max |W'_c|: same model.
    case = resnet10_case
    weights = {
        layer: np.abs(initializer(case.float_model, kernel))
        .reshape(initializer(case.float_model, kernel).shape[0], -1)
        .max(axis=1)
        for layer, kernel in case.names.conv_kernels.items()
        if layer not in case.names.head_layers
    }
    ours = quantize_for_onnxruntime(case.float_model, case.amax)
    qat = quantize_for_onnxruntime(case.float_model, case.amax, weights)
    for layer in weights:
        a = initializer(ours, f"{layer}/kernel_quantized").astype(int)
        b = initializer(qat, f"{layer}/kernel_quantized").astype(int)
        assert np.abs(a - b).max() <= 1  # float rounding of amax * f vs max |W * f|
        assert np.mean(a != b) < 0.001


@pytest.mark.parametrize("case_name", ["resnet10_case", "resnet18_case"])
def test_int8_outputs_stay_close_to_fp32_on_real_photos(request, case_name):
    # Max calibration on the same 4 photos, seeded random weights. Measured: ResNet-10 cov
    # 0.0027, bbox 2.3 % of its largest value; ResNet-18 0.0050 and 1.7 %.
    case = request.getfixturevalue(case_name)
    int8 = quantize_for_onnxruntime(case.float_model, case.amax)
    want_cov, want_bbox = make_session(case.float_model).run(None, {"input_1": case.images})
    cov, bbox = make_session(int8).run(None, {"input_1": case.images})
    assert np.abs(cov - want_cov).max() < 0.015
    assert np.abs(bbox - want_bbox).max() < 0.06 * np.abs(want_bbox).max()
    # The Q/DQ graph run op by op (no fusion) is as close to FP32 as the integer kernels.
    ref_cov, ref_bbox = make_session(int8, level="none").run(None, {"input_1": case.images})
    assert np.abs(ref_cov - want_cov).max() < 0.015
    assert np.abs(ref_bbox - want_bbox).max() < 0.06 * np.abs(want_bbox).max()


def test_fused_first_conv_matches_the_qdq_graph_to_one_step(resnet10_case):
    # QLinearConv (integer accumulation) vs float conv on dequantized values then Q: equal
    # but for rounding ties (int8_calibration.md §6). Later layers inherit such 1-step flips,
    # which is why the final outputs above are only compared within bounds.
    case = resnet10_case
    int8 = quantize_for_onnxruntime(case.float_model, case.amax)
    tensor = "activation_1/Relu_DequantizeLinear:0"
    int8.graph.output.append(helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None))
    step = float(initializer(int8, "activation_1/Relu_scale"))
    assert count_kernels(int8).integer_convs == 13  # still fused with the extra output
    fused = make_session(int8).run([tensor], {"input_1": case.images})[0]
    reference = make_session(int8, level="none").run([tensor], {"input_1": case.images})[0]
    steps = np.rint(np.abs(fused - reference) / step)
    assert steps.max() <= 1
    assert np.mean(steps > 0) < 0.001


def test_layer_keys_give_the_same_model_as_tensor_keys(resnet10_case):
    case = resnet10_case
    by_tensor = quantize_for_onnxruntime(case.float_model, case.amax)
    by_layer = quantize_for_onnxruntime(case.float_model, layer_amax(case.amax, case.names))
    assert by_layer.graph == by_tensor.graph
