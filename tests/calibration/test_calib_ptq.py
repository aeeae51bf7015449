"""PTQ driver: ONNX Runtime runs of a float ONNX graph -> histograms -> amax per tensor."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tao_qat.common.errors import DataError
from tao_qat.export.calibration import HistogramCollector, entropy_amax
from tao_qat.export.calibration_cache import read_calibration_cache, write_calibration_cache
from tao_qat.export.ptq import (
    amax_from_histograms,
    calibrate_onnx,
    calibration_session,
    collect_histograms,
    float_tensors,
    layer_amax,
    load_histograms,
    save_histograms,
)

RNG = np.random.default_rng(0)
K1 = RNG.standard_normal((3, 2, 1, 1)).astype(np.float32)
B1 = RNG.standard_normal(3).astype(np.float32)
K2 = RNG.standard_normal((1, 3, 1, 1)).astype(np.float32)
B2 = np.zeros(1, np.float32)


def tiny_model():
    """input_1 -> conv1 (1x1) -> relu1 -> add_1(relu1, conv1) -> output_cov conv -> Sigmoid,
    plus an int64 Shape tensor that is not an activation. Names follow our exporter."""
    nodes = [
        helper.make_node(
            "Conv",
            ["input_1", "conv1/kernel", "conv1/bias"],
            ["conv1/BiasAdd:0"],
            name="conv1/Conv2D",
        ),
        helper.make_node("Relu", ["conv1/BiasAdd:0"], ["relu1/Relu:0"], name="relu1/Relu"),
        helper.make_node(
            "Add", ["relu1/Relu:0", "conv1/BiasAdd:0"], ["add_1/add:0"], name="add_1/add"
        ),
        helper.make_node("Shape", ["add_1/add:0"], ["shape_1/Shape:0"], name="shape_1/Shape"),
        helper.make_node(
            "Conv",
            ["add_1/add:0", "output_cov/kernel", "output_cov/bias"],
            ["output_cov/BiasAdd:0"],
            name="output_cov/Conv2D",
        ),
        helper.make_node(
            "Sigmoid", ["output_cov/BiasAdd:0"], ["output_cov/Sigmoid"], name="output_cov/Sigmoid"
        ),
    ]
    inits = [
        numpy_helper.from_array(a, n)
        for a, n in (
            (K1, "conv1/kernel"),
            (B1, "conv1/bias"),
            (K2, "output_cov/kernel"),
            (B2, "output_cov/bias"),
        )
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["N", 2, 4, 4])],
        [helper.make_tensor_value_info("output_cov/Sigmoid", TensorProto.FLOAT, ["N", 1, 4, 4])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def numpy_forward(x):
    conv1 = np.einsum("oi,nihw->nohw", K1[:, :, 0, 0], x) + B1[None, :, None, None]
    relu = np.maximum(conv1, 0)
    add = relu + conv1
    cov = np.einsum("oi,nihw->nohw", K2[:, :, 0, 0], add)
    return {
        "input_1": x,
        "conv1/BiasAdd:0": conv1,
        "relu1/Relu:0": relu,
        "add_1/add:0": add,
        "output_cov/BiasAdd:0": cov,
        "output_cov/Sigmoid": 1 / (1 + np.exp(-cov)),
    }


BATCHES = [RNG.random((2, 2, 4, 4), dtype=np.float32) * s for s in (1.0, 3.0)]


def test_float_tensors_skip_non_float_outputs():
    assert float_tensors(tiny_model()) == [
        "input_1",
        "conv1/BiasAdd:0",
        "relu1/Relu:0",
        "add_1/add:0",
        "output_cov/BiasAdd:0",
        "output_cov/Sigmoid",
    ]


def test_max_calibration_equals_numpy_forward():
    amax = calibrate_onnx(tiny_model(), BATCHES, method="max")
    expected = {}
    for batch in BATCHES:
        for name, value in numpy_forward(batch).items():
            expected[name] = max(expected.get(name, 0.0), float(np.abs(value).max()))
    assert list(amax) == list(expected)
    for name, value in expected.items():
        # max_amax is the right edge of the last non-empty bin; the second batch extends the
        # first batch's range by whole bins, so the edge is at most one bin above the max
        assert value <= amax[name] * (1 + 1e-6) and amax[name] <= value * (1 + 2 / 2048)


def test_entropy_calibration_matches_a_collector_fed_by_numpy():
    collectors = collect_histograms(tiny_model(), BATCHES)
    amax = amax_from_histograms(collectors, "entropy")
    reference = HistogramCollector()
    for batch in BATCHES:
        reference.collect(numpy_forward(batch)["add_1/add:0"])
    # float32 rounding of ORT vs numpy can move a value across a bin edge: compare loosely
    assert amax["add_1/add:0"] == pytest.approx(entropy_amax(*reference.histogram()), rel=1e-2)
    assert collectors["add_1/add:0"].count == reference.count == 2 * 2 * 3 * 16


def test_layer_keys_skip_the_heads_and_cache_uses_tensor_names(tmp_path):
    model = tiny_model()
    amax = calibrate_onnx(model, BATCHES, method="max")
    by_layer = layer_amax(amax, model)
    assert list(by_layer) == ["input_1", "conv1", "relu1", "add_1"]
    assert by_layer["relu1"] == amax["relu1/Relu:0"]
    write_calibration_cache(tmp_path / "cal.bin", amax, "10.3.0")
    version, cached = read_calibration_cache(tmp_path / "cal.bin")
    assert version == 100300 and list(cached) == list(amax)


def test_histograms_save_and_load(tmp_path):
    collectors = collect_histograms(tiny_model(), BATCHES)
    save_histograms(tmp_path / "hist.npz", collectors)
    loaded = load_histograms(tmp_path / "hist.npz")
    assert list(loaded) == list(collectors)
    for name, collector in collectors.items():
        for a, b in zip(collector.histogram(), loaded[name].histogram(), strict=True):
            np.testing.assert_array_equal(a, b)
    assert amax_from_histograms(loaded) == amax_from_histograms(collectors)


def test_model_is_valid_onnx():
    onnx.checker.check_model(tiny_model())


@pytest.mark.parametrize("overlap, threads", [(False, 1), (True, 0), (True, 2)])
def test_overlapped_collection_gives_the_same_histograms_as_serial(overlap, threads):
    # five batches of different sizes and ranges: the worker thread runs batch k + 1 while
    # batch k is binned; the histograms must not depend on that
    batches = [RNG.random((n, 2, 4, 4), dtype=np.float32) * s for n, s in ((3, 1), (1, 4), (2, 2))]
    batches += [-batches[0], batches[1] * 0.5]
    reference = collect_histograms(tiny_model(), batches, overlap=False, intra_op_threads=1)
    collectors = collect_histograms(
        tiny_model(), batches, overlap=overlap, intra_op_threads=threads
    )
    assert list(collectors) == list(reference)
    for name, collector in collectors.items():
        for a, b in zip(collector.histogram(), reference[name].histogram(), strict=True):
            np.testing.assert_array_equal(a, b)
        assert collector.count == reference[name].count
    assert collectors["input_1"].count == (3 + 1 + 2 + 3 + 1) * 2 * 16  # images x C x H x W


def test_overlapped_collection_reports_no_batches_and_model_errors():
    with pytest.raises(DataError, match="no calibration batches"):
        collect_histograms(tiny_model(), iter([]))
    wrong = [BATCHES[0], RNG.random((2, 3, 4, 4), dtype=np.float32)]  # 3 channels, model takes 2
    with pytest.raises(Exception, match="input_1|dimensions|Got"):
        collect_histograms(tiny_model(), wrong)


def test_calibration_session_exposes_the_requested_tensors():
    session = calibration_session(tiny_model(), ["relu1/Relu:0", "add_1/add:0"])
    outputs = [o.name for o in session.get_outputs()]
    assert outputs == ["output_cov/Sigmoid", "relu1/Relu:0", "add_1/add:0"]
    relu, add = session.run(["relu1/Relu:0", "add_1/add:0"], {"input_1": BATCHES[0]})
    expected = numpy_forward(BATCHES[0])
    np.testing.assert_allclose(relu, expected["relu1/Relu:0"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(add, expected["add_1/add:0"], rtol=1e-5, atol=1e-6)
