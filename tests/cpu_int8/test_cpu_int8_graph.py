"""Structure of the CPU INT8 graph: heads stay float, which tensors need a scale (QAT dicts lack
the fused conv outputs), the missing-scale policies, and errors a user can cause."""

import numpy as np
import onnx
import pytest
from cpu_int8_testing import one_conv_model

from tao_qat.common.errors import UsageError
from tao_qat.export.cpu_int8 import (
    cpu_int8_activation_tensors,
    quantize_for_onnxruntime,
    uncovered_activation_tensors,
)
from tao_qat.export.cpu_int8_runtime import count_kernels, make_session
from tao_qat.export.qdq import insert_qdq

BLOCKS = ("1a", "2a", "3a", "4a")


def producer(model, tensor):
    return next(node for node in model.graph.node if tensor in node.output)


def test_heads_stay_float_and_read_the_last_dequantized_tensor(resnet10_case):
    case = resnet10_case
    int8 = quantize_for_onnxruntime(case.float_model, case.amax)
    float_inits = {init.name for init in case.float_model.graph.initializer}
    for layer in ("output_cov", "output_bbox"):
        node = next(n for n in int8.graph.node if n.name == case.names.conv_nodes[layer])
        assert node.input[1] == case.names.conv_kernels[layer]  # the float kernel
        assert node.input[1] in float_inits
        assert node.input[0] == "block_4a_relu/Relu_DequantizeLinear:0"
    assert [out.name for out in int8.graph.output] == list(case.names.output_names)
    quantized = {n.input[0] for n in int8.graph.node if n.op_type == "QuantizeLinear"}
    assert not quantized & set(case.names.output_names)
    assert "Sigmoid" in [n.op_type for n in int8.graph.node]


def test_tensors_to_calibrate_are_conv_and_add_inputs_and_outputs(resnet10_case):
    tensors = cpu_int8_activation_tensors(resnet10_case.float_model)
    # input + ReLU after conv1 + per block: shortcut BN, relu_1, BN_2 (main branch), block ReLU.
    expected = ["input_1", "activation_1/Relu:0"]
    for block in BLOCKS:
        expected += [
            f"block_{block}_bn_shortcut/FusedBatchNormV3:0",
            f"block_{block}_relu_1/Relu:0",
            f"block_{block}_bn_2/FusedBatchNormV3:0",
            f"block_{block}_relu/Relu:0",
        ]
    assert sorted(tensors) == sorted(expected)
    assert tensors[0] == "input_1"


def qat_like_scales(case):
    """A TensorRT-placement dict by Keras layer: input, ReLUs, projection shortcut BNs (the
    main-branch BN output is fused into the Add by TensorRT, so QAT has no range for it)."""
    keep = ["input_1", "activation_1"]
    for block in BLOCKS:
        keep += [f"block_{block}_relu_1", f"block_{block}_relu", f"block_{block}_bn_shortcut"]
    return {layer: case.amax[case.names.layer_tensors[layer]] for layer in keep}


def test_missing_scales_are_named_or_left_float(resnet10_case):
    case = resnet10_case
    scales = qat_like_scales(case)
    missing = uncovered_activation_tensors(case.float_model, scales)
    assert missing == [f"block_{block}_bn_2/FusedBatchNormV3:0" for block in BLOCKS]
    with pytest.raises(UsageError, match="block_1a_bn_2/FusedBatchNormV3:0"):
        quantize_for_onnxruntime(case.float_model, scales)
    partial = quantize_for_onnxruntime(case.float_model, scales, missing="float")
    kernels = count_kernels(partial)
    # The 4 conv_2 (no output scale) and the 4 Adds (an input without scale) stay float.
    assert (kernels.integer_convs, kernels.float_convs, kernels.ops["QLinearAdd"]) == (9, 6, 0)
    want = make_session(case.float_model).run(None, {"input_1": case.images})
    got = make_session(partial).run(None, {"input_1": case.images})
    assert np.abs(got[0] - want[0]).max() < 0.015
    # Filling the gap by calibrating just those tensors gives the fully integer graph.
    scales.update({tensor: case.amax[tensor] for tensor in missing})
    assert count_kernels(quantize_for_onnxruntime(case.float_model, scales)).integer_convs == 13


def test_dead_tensor_with_zero_amax_gets_a_usable_scale():
    model = quantize_for_onnxruntime(one_conv_model(), {"input_1": 1.0, "relu": 0.0})
    scale = next(i for i in model.graph.initializer if i.name == "relu/Relu_scale")
    assert onnx.numpy_helper.to_array(scale) == np.float32(1 / 255)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"activation_amax_by_tensor": {"nope": 1.0}}, "'nope': not a tensor or layer"),
        ({"activation_amax_by_tensor": {"input_1": float("nan"), "relu": 1.0}}, "finite"),
        ({"weight_amax_by_conv": {"bn": 1.0}}, "'bn': not a conv layer"),
        ({"weight_amax_by_conv": {"conv": [1.0, 2.0]}}, "one value or 1"),
        ({"activation_type": "int4"}, "activation_type 'int4'"),
        ({"missing": "guess"}, "missing 'guess'"),
        ({"activation_amax_by_tensor": {"input_1": 1.0}}, "relu/Relu:0"),
    ],
)
def test_user_errors_name_the_key(kwargs, message):
    arguments = {"activation_amax_by_tensor": {"input_1": 1.0, "relu": 1.0}, **kwargs}
    with pytest.raises(UsageError, match=message):
        quantize_for_onnxruntime(one_conv_model(), **arguments)


def test_refuses_old_opsets_and_models_that_already_have_qdq():
    old = one_conv_model()
    old.opset_import[0].version = 12
    with pytest.raises(UsageError, match="opset 12"):
        quantize_for_onnxruntime(old, {"input_1": 1.0, "relu": 1.0})
    qdq = insert_qdq(one_conv_model(), {"input_1": 1.0}, {})
    with pytest.raises(UsageError, match="already has Q/DQ"):
        quantize_for_onnxruntime(qdq, {"input_1": 1.0, "relu": 1.0})


def test_the_input_model_is_not_modified(resnet10_case):
    before = resnet10_case.float_model.SerializeToString()
    quantize_for_onnxruntime(resnet10_case.float_model, resnet10_case.amax)
    assert resnet10_case.float_model.SerializeToString() == before
