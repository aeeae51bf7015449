"""RasterizerParams.from_spec against the generated protobuf modules."""

import subprocess
import sys

import numpy as np
import pytest
from google.protobuf import text_format

from tao_qat.common.errors import SpecError
from tao_qat.objectives.params import RasterizerParams, default_grid_shape, grid_strides
from tao_qat.spec.proto import experiment_pb2

SPEC = """
model_config { objective_set { bbox { scale: 35.0 offset: 0.5 } cov {} } }
bbox_rasterizer_config {
  target_class_config { key: "car" value: { cov_center_x: 0.5 cov_center_y: 0.5
      cov_radius_x: 0.4 cov_radius_y: 0.4 bbox_min_radius: 1.0 } }
  target_class_config { key: "pedestrian" value: { cov_center_x: 0.25 cov_center_y: 0.75
      cov_radius_x: 0.3 cov_radius_y: 0.6 bbox_min_radius: 0.5 } }
  deadzone_radius: 0.67
}
"""


def _experiment(text=SPEC):
    return text_format.Parse(text, experiment_pb2.Experiment())


def test_from_spec_orders_classes_like_the_network():
    exp = _experiment()
    params = RasterizerParams.from_spec(
        exp.bbox_rasterizer_config, ["pedestrian", "car"], exp.model_config.objective_set.bbox
    )
    assert params.num_classes == 2
    # Class 0 is pedestrian (network order), whatever the map order in the file.
    np.testing.assert_allclose(params.per_class("cov_center_x"), [0.25, 0.5])
    np.testing.assert_allclose(params.per_class("cov_radius_y"), [0.6, 0.4])
    np.testing.assert_allclose(params.per_class("bbox_min_radius"), [0.5, 1.0])
    assert params.deadzone_radius == pytest.approx(0.67)
    assert (params.bbox_scale, params.bbox_offset) == (35.0, 0.5)
    assert params.class_names == ("pedestrian", "car")


def test_from_spec_without_bbox_objective_uses_nvidia_constants():
    params = RasterizerParams.from_spec(_experiment().bbox_rasterizer_config, ["car"])
    assert (params.bbox_scale, params.bbox_offset) == (35.0, 0.5)


def test_missing_class_is_a_one_line_spec_error():
    with pytest.raises(SpecError, match=r"target_class_config: no entry for target class 'truck'"):
        RasterizerParams.from_spec(_experiment().bbox_rasterizer_config, ["car", "truck"])


def test_zero_scale_is_rejected_with_field_path():
    exp = _experiment(SPEC.replace("scale: 35.0", "scale: 0.0"))
    with pytest.raises(SpecError, match=r"model_config.objective_set.bbox.scale"):
        RasterizerParams.from_spec(
            exp.bbox_rasterizer_config, ["car"], exp.model_config.objective_set.bbox
        )


def test_grid_helpers():
    assert default_grid_shape((384, 1248)) == (24, 78)
    assert grid_strides((384, 1248), (24, 78)) == (16.0, 16.0)
    with pytest.raises(ValueError, match="multiple of the stride"):
        default_grid_shape((100, 64))


def test_numpy_modules_do_not_import_tensorflow():
    # params, encoding, autoweight and the numpy reference rasterizer are TF-free (they are used
    # by postprocessing / evaluation tests); importing them with TensorFlow blocked must work.
    code = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['tf_keras'] = None\n"
        "import tao_qat.objectives.params, tao_qat.objectives.encoding\n"
        "import tao_qat.objectives.autoweight, tao_qat.objectives.rasterizer_numpy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
