"""Cost: hand-worked BCE / L1 on 1x2x2 grids, weights, masks, auto-weighting, from_spec."""

import numpy as np
import pytest
from google.protobuf import text_format

from tao_qat.common.errors import SpecError
from tao_qat.common.tensorflow_setup import tf
from tao_qat.objectives.autoweight import (
    autoweighted_objective_weights,
    class_weight_fractions,
    initial_objective_weights,
)
from tao_qat.objectives.cost import DetectNetCost
from tao_qat.spec.proto import cost_function_config_pb2

# One class, B=1, grid 2x2 (rows, cols). Coverage target t and prediction p:
#   t = [[1, 0], [0.25, 0]]        p = [[0.9, 0.2], [0.5, 0]]
# BCE = -(t ln(p + 1e-5) + (1 - t) ln(1 - p + 1e-5)):
#   (0,0): -ln(0.90001) = 0.1053494   weight w_fg = 0.05     (t > 0.5)
#   (0,1): -ln(0.80001) = 0.2231311   weight 1 - w_fg = 0.95
#   (1,0): -ln(0.50001) = 0.6931272   weight 0.95            (t = 0.25 is background)
#   (1,1): -ln(1.00001) = -0.0000100  weight 0.95            (QUIRK: eps makes it negative)
# cov cost = (0.05*0.1053494 + 0.95*(0.2231311 + 0.6931272 - 0.0000100)) / 4 = 0.2189258
COV_T = [[1.0, 0.0], [0.25, 0.0]]
COV_P = [[0.9, 0.2], [0.5, 0.0]]
COV_COST = 0.2189258
# bbox: cov_norm = [[0.25, 0], [0.5, 0]] weights |pred - target| (4 channels):
#   (0,0): target (1, 1, 1, 1), pred (1.5, 1, 0, 1): sum |d| = 1.5, x 0.25 = 0.375
#   (1,0): target (0.2, 0.4, 0.6, 0.8), pred 0: sum |d| = 2.0, x 0.5 = 1.0
#   (0,1), (1,1): cov_norm 0, so the pred 7 there costs nothing.
# bbox cost = (0.375 + 1.0) / (2 * 2 * 4) = 0.0859375
COV_NORM = [[0.25, 0.0], [0.5, 0.0]]
BBOX_T = [[[1, 1, 1, 1], [0, 0, 0, 0]], [[0.2, 0.4, 0.6, 0.8], [0, 0, 0, 0]]]
BBOX_P = [[[1.5, 1, 0, 1], [7, 7, 7, 7]], [[0, 0, 0, 0], [7, 7, 7, 7]]]
BBOX_COST = 0.0859375


def _targets(num_images=1):
    cov = np.array(COV_T, np.float32)[None, :, :, None]
    return {
        "cov": np.repeat(cov, num_images, 0),
        "cov_norm": np.repeat(np.array(COV_NORM, np.float32)[None, :, :, None], num_images, 0),
        "bbox": np.repeat(np.array(BBOX_T, np.float32)[None], num_images, 0),
    }


def _predictions(num_images=1, dtype=np.float32):
    cov = np.repeat(np.array(COV_P, dtype)[None, :, :, None], num_images, 0)
    return cov, np.repeat(np.array(BBOX_P, dtype)[None], num_images, 0)


def _cost(**kwargs):
    args = {
        "class_weights": [1.0],
        "coverage_foreground_weights": [0.05],
        "initial_weights": [[1.0, 10.0]],
        "weight_targets": [[1.0, 10.0]],
    }
    args.update(kwargs)
    return DetectNetCost(**args)


def test_hand_worked_cov_and_bbox_costs():
    total, components = _cost()(_targets(), *_predictions())
    np.testing.assert_allclose(components.numpy(), [[COV_COST, BBOX_COST]], rtol=1e-5)
    # ow = (1, 10) / 11: total = 0.2189258 / 11 + 0.0859375 * 10 / 11 = 0.0980273
    np.testing.assert_allclose(total.numpy(), COV_COST / 11 + BBOX_COST * 10 / 11, rtol=1e-5)
    assert total.dtype == tf.float32


def test_float16_predictions_are_cast_to_float32():
    total, components = _cost()(_targets(), *_predictions(dtype=np.float16))
    assert total.dtype == tf.float32 and components.dtype == tf.float32
    np.testing.assert_allclose(components.numpy(), [[COV_COST, BBOX_COST]], rtol=2e-3)


def test_source_weight_and_loss_masks_multiply_the_elementwise_cost():
    # Two identical frames, source weights (1, 0): the mean over B halves each cost.
    cost = _cost()
    _, comps = cost(_targets(2), *_predictions(2), source_weight=[1.0, 0.0])
    np.testing.assert_allclose(comps.numpy(), [[COV_COST / 2, BBOX_COST / 2]], rtol=1e-5)
    # A cov-only loss mask zeroing cell (1, 0) removes 0.95 * 0.6931272 / 4 = 0.1646177;
    # the bbox cost keeps its value (bbox mask absent = 1).
    mask = np.ones((1, 2, 2, 1), np.float32)
    mask[0, 1, 0, 0] = 0.0
    _, comps = cost(_targets(), *_predictions(), loss_masks={"cov": mask})
    np.testing.assert_allclose(comps.numpy(), [[COV_COST - 0.1646177, BBOX_COST]], rtol=1e-5)
    # The same mask on bbox removes cell (1, 0)'s 1.0 / 16 = 0.0625.
    _, comps = cost(_targets(), *_predictions(), loss_masks={"bbox": mask})
    np.testing.assert_allclose(comps.numpy(), [[COV_COST, BBOX_COST - 0.0625]], rtol=1e-5)


def test_class_major_bbox_channels_and_class_weights():
    # Two classes; class 1 has the hand-worked data, class 0 is perfect (zero cost).
    # Class weights (3, 1) -> cw = (0.75, 0.25); initial weights (1, 1) -> ow = 0.5 each.
    targets, (cov_p, bbox_p) = _targets(), _predictions()
    zeros_cov, zeros_bbox = np.zeros_like(targets["cov"]), np.zeros_like(targets["bbox"])
    two = {
        "cov": np.concatenate([zeros_cov, targets["cov"]], -1),
        "cov_norm": np.concatenate([targets["cov_norm"], targets["cov_norm"]], -1),
        "bbox": np.concatenate([zeros_bbox, targets["bbox"]], -1),
    }
    # class 0: p = 1e-9 with t = 0 -> BCE = -ln(1 + 1e-5 - 1e-9) ~ -1e-5 per cell.
    pred_cov = np.concatenate([np.full_like(cov_p, 1e-9), cov_p], -1)
    pred_bbox = np.concatenate([zeros_bbox, bbox_p], -1)
    cost = _cost(
        class_weights=[3.0, 1.0],
        coverage_foreground_weights=[0.05, 0.05],
        initial_weights=[[1.0, 1.0], [1.0, 1.0]],
        weight_targets=[[1.0, 1.0], [1.0, 1.0]],
    )
    total, comps = cost(two, pred_cov, pred_bbox)
    np.testing.assert_allclose(comps.numpy()[1], [COV_COST, BBOX_COST], rtol=1e-5)
    np.testing.assert_allclose(comps.numpy()[0], [-0.95 * 1e-5, 0.0], atol=1e-7)
    expected = 0.25 * 0.5 * (COV_COST + BBOX_COST) + 0.75 * 0.5 * (-0.95e-5)
    np.testing.assert_allclose(total.numpy(), expected, rtol=1e-5)


def test_weight_normalisation():
    np.testing.assert_allclose(class_weight_fractions([1, 3]), [0.25, 0.75])
    # Per class: (1, 10) -> (1/11, 10/11); all-zero initial weights stay 0 (TAO).
    np.testing.assert_allclose(
        initial_objective_weights([[1, 10], [0, 0]]), [[1 / 11, 10 / 11], [0, 0]], rtol=1e-6
    )


def test_autoweighting_numbers():
    # Class 0: S = (2, 0.5), targets (1, 10): w = (0.5, 20), sum 20.5 ->
    #   (0.0243902, 0.9756098), inside the clamp [1e-4, 0.9999].
    # Class 1: S = (0, 4): w = (0, 2.5) -> (0, 1) -> clamped to (1e-4, 0.9999).
    # Class 2: S = (0, 0): sum 0 -> keeps its old weights (0.3, 0.7).
    new = autoweighted_objective_weights(
        cost_sums=[[2.0, 0.5], [0.0, 4.0], [0.0, 0.0]],
        weight_targets=[[1, 10], [1, 10], [1, 10]],
        old_weights=[[0.1, 0.9], [0.1, 0.9], [0.3, 0.7]],
        min_weight=1e-4,
        max_weight=0.9999,
    )
    expected = [[0.5 / 20.5, 20 / 20.5], [1e-4, 0.9999], [0.3, 0.7]]
    np.testing.assert_allclose(new, expected, rtol=1e-6)
    assert new.dtype == np.float32


def test_update_objective_weights_changes_the_total():
    cost = _cost(enable_autoweighting=True, min_objective_weight=1e-4, max_objective_weight=0.9999)
    weights = cost.update_objective_weights([[2.0, 0.5]])
    np.testing.assert_allclose(weights, [[0.5 / 20.5, 20 / 20.5]], rtol=1e-6)
    np.testing.assert_allclose(cost.objective_weights.numpy(), weights)
    total, _ = cost(_targets(), *_predictions())
    np.testing.assert_allclose(total.numpy(), (COV_COST * 0.5 + BBOX_COST * 20) / 20.5, rtol=1e-5)
    # Disabled: the call is a no-op.
    fixed = _cost()
    np.testing.assert_allclose(fixed.update_objective_weights([[2.0, 0.5]]), [[1 / 11, 10 / 11]])


def test_cost_inside_tf_function():
    cost = _cost()
    fn = tf.function(lambda t, c, b: cost(t, c, b)[0])
    np.testing.assert_allclose(
        fn(_targets(), *_predictions()).numpy(), COV_COST / 11 + BBOX_COST * 10 / 11, rtol=1e-5
    )


SPEC = """
target_classes {
  name: "car" class_weight: 1.0 coverage_foreground_weight: 0.05
  objectives { name: "bbox" initial_weight: 10.0 weight_target: 10.0 }
  objectives { name: "cov" initial_weight: 1.0 weight_target: 1.0 }
}
target_classes {
  name: "pedestrian" class_weight: 3.0 coverage_foreground_weight: 0.1
  objectives { name: "cov" initial_weight: 1.0 weight_target: 1.0 }
  objectives { name: "bbox" initial_weight: 3.0 weight_target: 10.0 }
}
enable_autoweighting: True
max_objective_weight: 0.9999
min_objective_weight: 0.0001
"""


def _config(text=SPEC):
    return text_format.Parse(text, cost_function_config_pb2.CostFunctionConfig())


def test_from_spec():
    cost = DetectNetCost.from_spec(_config(), ["car", "pedestrian"])
    assert cost.class_names == ("car", "pedestrian")
    np.testing.assert_allclose(cost.class_fractions, [0.25, 0.75])
    np.testing.assert_allclose(cost.coverage_foreground_weights, [0.05, 0.1])
    # Columns are (cov, bbox) whatever the order in the spec.
    np.testing.assert_allclose(
        cost.objective_weights.numpy(), [[1 / 11, 10 / 11], [0.25, 0.75]], rtol=1e-6
    )
    np.testing.assert_allclose(cost.weight_targets, [[1, 10], [1, 10]])
    assert cost.enable_autoweighting
    assert cost.min_objective_weight == pytest.approx(1e-4)


@pytest.mark.parametrize(
    ("text", "names", "message"),
    [
        (SPEC, ["pedestrian", "car"], r"differ from the expected"),
        (
            SPEC.replace('objectives { name: "bbox" initial_weight: 3.0 weight_target: 10.0 }', ""),
            None,
            r"target_classes\[1\] \('pedestrian'\).objectives: need exactly one 'cov' and one",
        ),
        (
            SPEC.replace('name: "bbox" initial_weight: 10.0', 'name: "box" initial_weight: 10.0'),
            None,
            r"target_classes\[0\]",
        ),
        ("", None, r"at least one target class"),
        (
            SPEC.replace("class_weight: 1.0", "class_weight: 0.0").replace("class_weight: 3.0", ""),
            None,
            r"class_weight: must sum to > 0",
        ),
    ],
)
def test_from_spec_errors(text, names, message):
    with pytest.raises(SpecError, match=message):
        DetectNetCost.from_spec(_config(text), names)
