"""Helpers for the CPU INT8 tests: tiny exported DetectNet_v2 models with PTQ scales from the
real photos, and a hand-built one-conv graph with hand-worked numbers."""

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "export"))

from onnx_export_testing import randomized_model, real_images  # noqa: E402

from tao_qat.common.tensorflow_setup import keras  # noqa: E402
from tao_qat.export.onnx_export import convert_keras_to_onnx  # noqa: E402
from tao_qat.export.ptq import calibrate_onnx  # noqa: E402


def exported_case(num_layers, size=64):
    """Random-weight DetectNet_v2 (2 classes, size x size) as float ONNX, the 4 real photos
    (NCHW) and max-calibrated {tensor: amax} for every float tensor."""
    keras.utils.set_random_seed(num_layers)  # the Keras kernel initializers
    keras_model = randomized_model(num_layers, (size, size, 3))
    float_model, names = convert_keras_to_onnx(keras_model)
    images = np.ascontiguousarray(real_images(size, size).transpose(0, 3, 1, 2))
    amax = calibrate_onnx(float_model, [images[:2], images[2:]], method="max")
    return SimpleNamespace(float_model=float_model, names=names, images=images, amax=amax)


def one_conv_model(
    *, weight=0.5, bias=0.25, gamma=2.0, beta=-0.5, mean=0.25, var=0.75, epsilon=0.25, width=4
):
    """Input [N, 1, 1, width] -> conv (1x1) -> BN -> ReLU -> two 1x1 heads (weight 1, bias 0):
    ``output_bbox/BiasAdd`` (identity) and ``output_cov/Sigmoid``. Default BN factor
    f = 2 / sqrt(0.75 + 0.25) = 2 (exact in float32), so the folded conv is y = x - 0.5
    before the ReLU."""

    def const(name, value):
        return numpy_helper.from_array(np.asarray(value, np.float32), name)

    inits = [
        const("conv/kernel:0", np.full((1, 1, 1, 1), weight)),
        const("conv/bias:0", [bias]),
        const("bn/gamma:0", [gamma]),
        const("bn/beta:0", [beta]),
        const("bn/mean:0", [mean]),
        const("bn/var:0", [var]),
        const("output_cov/kernel:0", np.ones((1, 1, 1, 1))),
        const("output_cov/bias:0", [0.0]),
        const("output_bbox/kernel:0", np.ones((1, 1, 1, 1))),
        const("output_bbox/bias:0", [0.0]),
    ]
    nodes = [
        helper.make_node(
            "Conv",
            ["input_1", "conv/kernel:0", "conv/bias:0"],
            ["conv/BiasAdd:0"],
            name="conv/BiasAdd",
        ),
        helper.make_node(
            "BatchNormalization",
            ["conv/BiasAdd:0", "bn/gamma:0", "bn/beta:0", "bn/mean:0", "bn/var:0"],
            ["bn/FusedBatchNormV3:0"],
            name="bn/FusedBatchNormV3",
            epsilon=epsilon,
        ),
        helper.make_node("Relu", ["bn/FusedBatchNormV3:0"], ["relu/Relu:0"], name="relu/Relu"),
        helper.make_node(
            "Conv",
            ["relu/Relu:0", "output_cov/kernel:0", "output_cov/bias:0"],
            ["output_cov/BiasAdd:0"],
            name="output_cov/BiasAdd",
        ),
        helper.make_node(
            "Sigmoid", ["output_cov/BiasAdd:0"], ["output_cov/Sigmoid"], name="output_cov/Sigmoid"
        ),
        helper.make_node(
            "Conv",
            ["relu/Relu:0", "output_bbox/kernel:0", "output_bbox/bias:0"],
            ["output_bbox/BiasAdd"],
            name="output_bbox/BiasAdd",
        ),
    ]
    shape = ["N", 1, 1, width]
    graph = helper.make_graph(
        nodes,
        "one_conv",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, shape)],
        [
            helper.make_tensor_value_info("output_cov/Sigmoid", TensorProto.FLOAT, shape),
            helper.make_tensor_value_info("output_bbox/BiasAdd", TensorProto.FLOAT, shape),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model, full_check=True)
    return model
