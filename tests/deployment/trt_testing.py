"""Tiny DetectNet_v2-shaped ONNX models for the TensorRT tests (built with onnx.helper).

input_1 float32 [N, 3, 32, 48] -> one 16x16 stride-16 conv per head:
output_cov/Sigmoid [N, 2, 2, 3] and output_bbox/BiasAdd [N, 8, 2, 3] (2 classes, 4 per class).
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CHW = (3, 32, 48)
COV_TENSOR = "conv_cov/BiasAdd:0"
# cache lines, hex of amax/127: 1.0 -> 3c010204, 6.0 -> 3d418306 (int8_calibration.md §2.2)
CACHE_LINES = "input_1: 3c010204\nconv_cov/BiasAdd:0: 3d418306\noutput_cov/Sigmoid: 3c010204\n"


def tiny_model(*, batch=None, qdq=False, seed=0):
    """The onnx.ModelProto (opset 13); batch None = symbolic "N"; qdq adds Q/DQ on the input
    and per-channel Q/DQ on both kernels (explicit INT8, TensorRT style)."""
    rng = np.random.default_rng(seed)
    c, h, w = CHW
    weights = {
        "cov_kernel": rng.normal(0, 0.05, (2, c, 16, 16)).astype(np.float32),
        "cov_bias": np.array([0.1, -0.1], np.float32),
        "bbox_kernel": rng.normal(0, 0.05, (8, c, 16, 16)).astype(np.float32),
        "bbox_bias": np.linspace(-1, 1, 8).astype(np.float32),
    }
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    nodes, source, kernels = [], "input_1", {"cov": "cov_kernel", "bbox": "bbox_kernel"}
    if qdq:
        inits += [
            numpy_helper.from_array(np.array(1.0 / 127, np.float32), "input_scale"),
            numpy_helper.from_array(np.array(0, np.int8), "zero"),
            numpy_helper.from_array(np.zeros(2, np.int8), "zero2"),
            numpy_helper.from_array(np.zeros(8, np.int8), "zero8"),
        ]
        nodes += [
            helper.make_node("QuantizeLinear", ["input_1", "input_scale", "zero"], ["input_q"]),
            helper.make_node("DequantizeLinear", ["input_q", "input_scale", "zero"], ["input_dq"]),
        ]
        source = "input_dq"
        for head, zero in (("cov", "zero2"), ("bbox", "zero8")):
            kernel = weights[f"{head}_kernel"]
            scale = (np.abs(kernel).reshape(len(kernel), -1).max(1) / 127).astype(np.float32)
            inits.append(numpy_helper.from_array(scale, f"{head}_wscale"))
            args = [f"{head}_kernel", f"{head}_wscale", zero]
            nodes += [
                helper.make_node("QuantizeLinear", args, [f"{head}_wq"], axis=0),
                helper.make_node(
                    "DequantizeLinear",
                    [f"{head}_wq", f"{head}_wscale", zero],
                    [f"{head}_wdq"],
                    axis=0,
                ),
            ]
            kernels[head] = f"{head}_wdq"
    conv = {"kernel_shape": [16, 16], "strides": [16, 16]}
    nodes += [
        helper.make_node("Conv", [source, kernels["cov"], "cov_bias"], [COV_TENSOR], **conv),
        helper.make_node("Sigmoid", [COV_TENSOR], ["output_cov/Sigmoid"]),
        helper.make_node(
            "Conv", [source, kernels["bbox"], "bbox_bias"], ["output_bbox/BiasAdd"], **conv
        ),
    ]
    n = batch if batch is not None else "N"
    graph = helper.make_graph(
        nodes,
        "tiny_detectnet",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, [n, c, h, w])],
        [
            helper.make_tensor_value_info("output_cov/Sigmoid", TensorProto.FLOAT, [n, 2, 2, 3]),
            helper.make_tensor_value_info("output_bbox/BiasAdd", TensorProto.FLOAT, [n, 8, 2, 3]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def write_tiny_model(path, **kwargs):
    """Save ``tiny_model(**kwargs)`` to ``path``; returns the path."""
    onnx.save(tiny_model(**kwargs), str(path))
    return path


def images(count, seed=1):
    """float32 [count, 32, 48, 3] NHWC in [0, 1]."""
    return np.random.default_rng(seed).random((count, CHW[1], CHW[2], CHW[0]), np.float32)
