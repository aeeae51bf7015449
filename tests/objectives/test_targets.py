"""TargetEncoder: from an Experiment spec to targets inside a tf.data pipeline."""

import numpy as np
from conftest import CENTRED_BOX, CENTRED_COV
from google.protobuf import text_format

from tao_qat.common.tensorflow_setup import tf
from tao_qat.objectives.targets import TargetEncoder, target_class_names
from tao_qat.spec.proto import experiment_pb2

SPEC = """
model_config { objective_set { bbox { scale: 35.0 offset: 0.5 } cov {} } }
bbox_rasterizer_config {
  target_class_config { key: "tree" value: { cov_center_x: 0.5 cov_center_y: 0.5
      cov_radius_x: 0.4 cov_radius_y: 0.4 bbox_min_radius: 1.0 } }
  target_class_config { key: "car" value: { cov_center_x: 0.5 cov_center_y: 0.5
      cov_radius_x: 0.4 cov_radius_y: 0.4 bbox_min_radius: 1.0 } }
  deadzone_radius: 0.67
}
cost_function_config {
  target_classes { name: "car" class_weight: 1.0 coverage_foreground_weight: 0.05
    objectives { name: "cov" initial_weight: 1.0 weight_target: 1.0 }
    objectives { name: "bbox" initial_weight: 10.0 weight_target: 10.0 } }
  target_classes { name: "tree" class_weight: 1.0 coverage_foreground_weight: 0.05
    objectives { name: "cov" initial_weight: 1.0 weight_target: 1.0 }
    objectives { name: "bbox" initial_weight: 10.0 weight_target: 10.0 } }
}
"""

MASK = """
loss_mask_label_filter {
  objective_label_filter_configs {
    label_filter { bbox_dimensions_label_filter { max_width: 100.0 } }
    target_class_names: "tree"
  }
  mask_multiplier: 0.25
}
"""


def _batches(encoder):
    boxes = [np.array([CENTRED_BOX], np.float32), np.zeros((0, 4), np.float32)]
    classes = [np.array([1], np.int32), np.zeros((0,), np.int32)]
    data = tf.data.Dataset.from_generator(
        lambda: (
            {"boxes": b, "classes": c, "num_boxes": len(c)}
            for b, c in zip(boxes, classes, strict=True)
        ),
        output_signature={
            "boxes": tf.TensorSpec([None, 4], tf.float32),
            "classes": tf.TensorSpec([None], tf.int32),
            "num_boxes": tf.TensorSpec([], tf.int32),
        },
    )
    data = data.padded_batch(2, padding_values={"boxes": 0.0, "classes": -1, "num_boxes": 0})
    return list(data.map(lambda batch: (batch, encoder(batch))))


def test_encoder_from_spec_in_tf_data():
    exp = text_format.Parse(SPEC, experiment_pb2.Experiment())
    assert target_class_names(exp) == ["car", "tree"]
    encoder = TargetEncoder.from_spec(exp, (64, 64))
    assert encoder.loss_mask_filter is None
    [(_, targets)] = _batches(encoder)
    assert set(targets) == {"cov", "cov_norm", "bbox"}
    assert targets["cov"].shape == (2, 4, 4, 2) and targets["bbox"].shape == (2, 4, 4, 8)
    np.testing.assert_array_equal(targets["cov"][0, :, :, 1], CENTRED_COV)  # class 1 = tree
    np.testing.assert_array_equal(targets["cov"][0, :, :, 0], 0.0)
    np.testing.assert_array_equal(targets["cov"][1], 0.0)


def test_encoder_adds_loss_masks_when_the_spec_has_a_filter():
    exp = text_format.Parse(SPEC + MASK, experiment_pb2.Experiment())
    [(_, targets)] = _batches(TargetEncoder.from_spec(exp, (64, 64)))
    masks = targets["loss_masks"]
    # The 32x32 tree box (8, 8)-(40, 40) = cells 0.5..2.5 hits columns / rows 0..2.
    expected = np.ones((4, 4), np.float32)
    expected[0:3, 0:3] = 0.25
    for objective in ("cov", "bbox"):
        np.testing.assert_array_equal(masks[objective][0, :, :, 1], expected)
        np.testing.assert_array_equal(masks[objective][0, :, :, 0], 1.0)
        np.testing.assert_array_equal(masks[objective][1], 1.0)
