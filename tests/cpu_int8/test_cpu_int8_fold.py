"""fold_batchnorm: hand-worked folded weights, and folded graphs computing what the BN graphs do."""

import numpy as np
import onnx
from cpu_int8_testing import one_conv_model
from onnx import numpy_helper

from tao_qat.export.cpu_int8_fold import fold_batchnorm
from tao_qat.export.cpu_int8_runtime import make_session


def initializer(model, name):
    return next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name == name)


def test_fold_matches_hand_worked_kernel_and_bias():
    # f = gamma / sqrt(var + eps) = 3 / sqrt(3.75 + 0.25) = 1.5 (all exact in float32)
    # W' = 0.5 * 1.5 = 0.75; b' = (0.25 - 1.25) * 1.5 + 0.5 = -1.0
    model = one_conv_model(
        weight=0.5, bias=0.25, gamma=3.0, beta=0.5, mean=1.25, var=3.75, epsilon=0.25
    )
    folded, convs = fold_batchnorm(model)
    conv = convs["conv/BiasAdd"]
    assert conv.layer == "conv" and conv.batchnorm == "bn/FusedBatchNormV3"
    np.testing.assert_allclose(conv.factor, [1.5], rtol=1e-12)
    np.testing.assert_allclose(initializer(folded, conv.kernel).reshape(-1), [0.75], rtol=1e-6)
    np.testing.assert_allclose(initializer(folded, conv.bias), [-1.0], rtol=1e-6)
    ops = [node.op_type for node in folded.graph.node]
    assert "BatchNormalization" not in ops
    # The folded conv writes the BN's tensor, so scales keyed by the BN still apply.
    producer = next(n for n in folded.graph.node if n.output[0] == "bn/FusedBatchNormV3:0")
    assert producer.name == "conv/BiasAdd"
    # Heads have no BN: listed with factor 1 and their own initializers.
    assert convs["output_bbox/BiasAdd"].batchnorm is None
    np.testing.assert_array_equal(convs["output_bbox/BiasAdd"].factor, [1.0])
    # Old kernel, bias and BN parameters are gone; the input model is untouched.
    names = {init.name for init in folded.graph.initializer}
    assert not names & {"conv/kernel:0", "bn/gamma:0", "bn/var:0"}
    assert "BatchNormalization" in [node.op_type for node in model.graph.node]
    onnx.checker.check_model(folded, full_check=True)


def test_folded_resnet10_computes_the_float_outputs(resnet10_case):
    case = resnet10_case
    folded, convs = fold_batchnorm(case.float_model)
    assert sum(conv.batchnorm is not None for conv in convs.values()) == 13  # all but the heads
    assert [n.op_type for n in folded.graph.node].count("BatchNormalization") == 0
    expected = make_session(case.float_model).run(None, {"input_1": case.images})
    actual = make_session(folded).run(None, {"input_1": case.images})
    for got, want in zip(actual, expected, strict=True):
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
