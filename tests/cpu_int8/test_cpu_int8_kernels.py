"""ONNX Runtime runs the CPU INT8 graph with integer kernels: counted in the optimized graph it
writes (QLinearConv for every backbone conv, QLinearAdd for every Add, heads float)."""

import pytest

from tao_qat.export.cpu_int8 import quantize_for_onnxruntime
from tao_qat.export.cpu_int8_runtime import count_kernels, optimized_graph
from tao_qat.export.qdq import insert_qdq

HEAD_LAYERS = ("output_cov", "output_bbox")


def float_conv_names(model):
    graph = optimized_graph(model).graph
    return sorted(node.name for node in graph.node if node.op_type in ("Conv", "FusedConv"))


@pytest.mark.parametrize(
    ("case_name", "backbone_convs", "adds"),
    [("resnet10_case", 13, 4), ("resnet18_case", 21, 8)],  # conv1 + 2 per block + shortcuts
)
def test_every_backbone_conv_and_add_runs_as_an_integer_kernel(
    request, case_name, backbone_convs, adds
):
    case = request.getfixturevalue(case_name)
    int8 = quantize_for_onnxruntime(case.float_model, case.amax)
    kernels = count_kernels(int8)
    assert kernels.integer_convs == backbone_convs
    assert kernels.ops["QLinearAdd"] == adds
    assert kernels.float_convs == 2
    names = float_conv_names(int8)
    assert all(any(head in name for head in HEAD_LAYERS) for name in names), names
    # Activations stay 8-bit from the input Q to the heads' DQ: one Q (the image) and only
    # the DQ (duplicated per head) that feeds the float heads are left as separate nodes.
    assert kernels.ops["QuantizeLinear"] == 1
    assert kernels.ops["DequantizeLinear"] == 2
    assert "Relu" not in kernels.ops  # every ReLU fused into the Q of its conv / Add


def test_float_model_and_tensorrt_style_qdq_have_no_integer_convs(resnet10_case):
    case = resnet10_case
    assert count_kernels(case.float_model).integer_convs == 0
    # TensorRT placement (Q/DQ on conv inputs only, BN kept): no conv ends in a Q, so ONNX
    # Runtime fuses none of them (int8_calibration.md §6).
    tensorrt = insert_qdq(
        case.float_model,
        {
            layer: case.amax[tensor]
            for layer, tensor in case.names.layer_tensors.items()
            if "relu" in tensor.lower() or layer == "input_1"
        },
        {},
        case.names,
    )
    assert count_kernels(tensorrt).integer_convs == 0


def test_signed_activations_are_supported_but_fuse_fewer_convs_on_x86(resnet10_case):
    # S8S8: ONNX Runtime 1.32 on x86 converts int8 Q/DQ to uint8 and then fuses only some
    # groups (measured: 4 of 13 here, 8 of 21 on ResNet-18); U8S8 fuses all of them.
    case = resnet10_case
    kernels = count_kernels(
        quantize_for_onnxruntime(case.float_model, case.amax, activation_type="int8")
    )
    assert 0 < kernels.integer_convs <= 13
    assert kernels.integer_convs + kernels.float_convs == 15


def test_per_tensor_weight_scales_fuse_too(resnet10_case):
    case = resnet10_case
    int8 = quantize_for_onnxruntime(case.float_model, case.amax, per_channel=False)
    scales = [i for i in int8.graph.initializer if i.name.endswith("kernel_scale")]
    assert len(scales) == 13 and all(not scale.dims for scale in scales)  # scalars
    assert count_kernels(int8).integer_convs == 13
