"""DetectNet_v2 task cost: weighted BCE on cov, weighted L1 on bbox, class and objective weights.

TAO digest §3.4-3.5. Per class c (network order) and objective o in (cov, bbox):
    cov:  mean over [B, Gh, Gw] of mask * w * BCE(t, p), w = w_fg if t > 0.5 else 1 - w_fg,
          BCE = -(t * ln(p + 1e-5) + (1 - t) * ln(1 - p + 1e-5)) on the sigmoid output p;
    bbox: mean over [B, Gh, Gw, 4] of mask * cov_norm * |pred - target|;
    total = sum_c sum_o cost[c, o] * cw[c] * ow[c, o],
with mask = loss-mask-filter raster (default 1) x per-frame source_weight, cw the normalised
class weights and ow the (auto-weighted) objective weights held in a tf.Variable [C, 2].
"""

import logging

import numpy as np

from tao_qat.common.errors import SpecError
from tao_qat.common.tensorflow_setup import tf
from tao_qat.objectives.autoweight import (
    autoweighted_objective_weights,
    class_weight_fractions,
    initial_objective_weights,
)
from tao_qat.objectives.params import OBJECTIVE_NAMES

logger = logging.getLogger(__name__)

EPSILON = 1e-5


class DetectNetCost:
    """The task cost and its objective weights.

    Args:
        class_weights: float [C] (``class_weight``), normalised to sum 1.
        coverage_foreground_weights: float [C] (``coverage_foreground_weight``).
        initial_weights: float [C, 2] (``initial_weight`` of cov, bbox), normalised per class.
        weight_targets: float [C, 2] (``weight_target`` of cov, bbox).
        enable_autoweighting: update objective weights at epoch end (``update_objective_weights``).
        min_objective_weight, max_objective_weight: clamp of auto-weighted objective weights.
        class_names: optional, for messages.
    """

    def __init__(
        self,
        class_weights,
        coverage_foreground_weights,
        initial_weights,
        weight_targets,
        enable_autoweighting=False,
        min_objective_weight=0.0,
        max_objective_weight=1.0,
        class_names=(),
    ):
        self.class_names = tuple(class_names)
        self.class_fractions = class_weight_fractions(class_weights)
        self.coverage_foreground_weights = np.asarray(coverage_foreground_weights, np.float32)
        self.initial_weights = initial_objective_weights(initial_weights)
        self.weight_targets = np.asarray(weight_targets, np.float32)
        self.enable_autoweighting = bool(enable_autoweighting)
        self.min_objective_weight = float(min_objective_weight)
        self.max_objective_weight = float(max_objective_weight)
        num_classes = len(self.class_fractions)
        expected = (num_classes, len(OBJECTIVE_NAMES))
        assert self.coverage_foreground_weights.shape == (num_classes,)
        assert self.initial_weights.shape == expected and self.weight_targets.shape == expected
        self.num_classes = num_classes
        #: float32 [C, 2] objective weights (cov, bbox); checkpoint it to resume auto-weighting.
        self.objective_weights = tf.Variable(
            self.initial_weights, trainable=False, dtype=tf.float32, name="objective_weights"
        )
        if self.enable_autoweighting and self.max_objective_weight <= 0:
            logger.warning(
                "max_objective_weight is %s with enable_autoweighting: every objective weight "
                "becomes %s after the first epoch (as in TAO)",
                self.max_objective_weight,
                self.max_objective_weight,
            )

    @classmethod
    def from_spec(cls, cost_function_config, class_names=None):
        """Build from a ``CostFunctionConfig`` message.

        Args:
            cost_function_config: the message (its target_classes order is the network order).
            class_names: optional expected class names in network order (checked).
        Raises:
            SpecError: no classes, class names disagree, objectives are not exactly {cov, bbox},
                or the class weights sum to <= 0.
        """
        path = "cost_function_config.target_classes"
        target_classes = list(cost_function_config.target_classes)
        if not target_classes:
            raise SpecError(f"{path}: at least one target class is required")
        names = [tc.name for tc in target_classes]
        if class_names is not None and list(class_names) != names:
            raise SpecError(f"{path}: classes {names} differ from the expected {list(class_names)}")
        initial, targets = [], []
        for i, tc in enumerate(target_classes):
            by_name = {}
            for objective in tc.objectives:
                if objective.name in by_name or objective.name not in OBJECTIVE_NAMES:
                    by_name = None
                    break
                by_name[objective.name] = objective
            if by_name is None or len(by_name) != len(OBJECTIVE_NAMES):
                got = [objective.name for objective in tc.objectives]
                raise SpecError(
                    f"{path}[{i}] ('{tc.name}').objectives: need exactly one 'cov' and one "
                    f"'bbox' objective, got {got}"
                )
            initial.append([by_name[o].initial_weight for o in OBJECTIVE_NAMES])
            targets.append([by_name[o].weight_target for o in OBJECTIVE_NAMES])
        class_weights = [tc.class_weight for tc in target_classes]
        if not sum(class_weights) > 0:
            raise SpecError(f"{path}[*].class_weight: must sum to > 0, got {class_weights}")
        return cls(
            class_weights=class_weights,
            coverage_foreground_weights=[tc.coverage_foreground_weight for tc in target_classes],
            initial_weights=initial,
            weight_targets=targets,
            enable_autoweighting=cost_function_config.enable_autoweighting,
            min_objective_weight=cost_function_config.min_objective_weight,
            max_objective_weight=cost_function_config.max_objective_weight,
            class_names=names,
        )

    def component_costs(
        self, targets, output_cov, output_bbox, source_weight=None, loss_masks=None
    ):
        """Mean cost per class and objective: float32 [C, 2] (columns cov, bbox).

        Args:
            targets: dict ``cov``, ``cov_norm`` float32 [B, Gh, Gw, C] and ``bbox`` [B, Gh, Gw, 4C].
            output_cov: [B, Gh, Gw, C] sigmoid outputs (any float dtype; cast to float32).
            output_bbox: [B, Gh, Gw, 4C] linear outputs (cast to float32).
            source_weight: optional float [B] per-frame weight (``DataSource.source_weight``).
            loss_masks: optional dict ``cov`` / ``bbox`` -> float32 [B, Gh, Gw, C] from
                ``LossMaskFilter`` (missing keys mean 1).
        """
        pred_cov = tf.cast(output_cov, tf.float32)
        pred_bbox = tf.cast(output_bbox, tf.float32)
        cov_t = tf.cast(targets["cov"], tf.float32)
        cov_norm = tf.cast(targets["cov_norm"], tf.float32)
        bbox_t = tf.cast(targets["bbox"], tf.float32)
        mask_cov, mask_bbox = self._masks(loss_masks, source_weight)

        bce = -(
            cov_t * tf.math.log(pred_cov + EPSILON)
            + (1.0 - cov_t) * tf.math.log(1.0 - pred_cov + EPSILON)
        )
        w_fg = self.coverage_foreground_weights
        weights = tf.where(cov_t > 0.5, w_fg, 1.0 - w_fg)
        cov_cost = tf.reduce_mean(mask_cov * (weights * bce), axis=[0, 1, 2])  # [C]

        split = tf.concat([tf.shape(bbox_t)[:3], [self.num_classes, 4]], axis=0)
        dist = tf.abs(tf.reshape(pred_bbox, split) - tf.reshape(bbox_t, split))
        bbox_cost = mask_bbox[..., None] * (cov_norm[..., None] * dist)
        bbox_cost = tf.reduce_mean(bbox_cost, axis=[0, 1, 2, 4])  # [C]
        return tf.stack([cov_cost, bbox_cost], axis=1)

    def __call__(self, targets, output_cov, output_bbox, source_weight=None, loss_masks=None):
        """Total task cost (float32 scalar) and the [C, 2] component costs (``component_costs``).

        Sum the component costs over an epoch's minibatches and pass the sums to
        ``update_objective_weights`` at epoch end.
        """
        components = self.component_costs(
            targets, output_cov, output_bbox, source_weight, loss_masks
        )
        weights = tf.constant(self.class_fractions)[:, None] * self.objective_weights
        return tf.reduce_sum(components * weights), components

    def update_objective_weights(self, epoch_cost_sums):
        """End-of-epoch auto-weighting (no-op unless enabled); returns the weights float32 [C, 2].

        Args:
            epoch_cost_sums: float [C, 2], the epoch's sum of minibatch component costs.
        """
        if self.enable_autoweighting:
            new = autoweighted_objective_weights(
                epoch_cost_sums,
                self.weight_targets,
                self.objective_weights.numpy(),
                self.min_objective_weight,
                self.max_objective_weight,
            )
            self.objective_weights.assign(new)
        return self.objective_weights.numpy()

    def _masks(self, loss_masks, source_weight):
        """Loss masks for cov and bbox, broadcastable to [B, Gh, Gw, C]."""
        loss_masks = loss_masks or {}
        frame = tf.ones([1, 1, 1, 1])
        if source_weight is not None:
            frame = tf.reshape(tf.cast(source_weight, tf.float32), [-1, 1, 1, 1])
        masks = []
        for name in OBJECTIVE_NAMES:
            mask = loss_masks.get(name)
            masks.append(frame if mask is None else tf.cast(mask, tf.float32) * frame)
        return masks
