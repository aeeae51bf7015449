"""Training targets of a batch from the experiment spec: cov / cov_norm / bbox + loss masks.

The single integration point for the data pipeline and trainer::

    encoder = TargetEncoder.from_spec(experiment, input_shape=(384, 384))
    dataset = dataset.map(lambda batch: (batch, encoder(batch)))  # after .padded_batch(...)
    total, components = cost(targets, output_cov, output_bbox, batch["source_weight"],
                             targets.get("loss_masks"))
"""

from tao_qat.objectives.loss_mask import LossMaskFilter
from tao_qat.objectives.params import RasterizerParams
from tao_qat.objectives.rasterizer import BboxRasterizer
from tao_qat.spec.defaults import target_class_names


class TargetEncoder:
    """Batch dict -> targets dict (graph-mode safe, for ``tf.data`` ``map`` after batching).

    Args:
        rasterizer: ``BboxRasterizer``.
        loss_mask_filter: optional ``LossMaskFilter``.
    """

    def __init__(self, rasterizer, loss_mask_filter=None):
        self.rasterizer = rasterizer
        self.loss_mask_filter = loss_mask_filter

    @classmethod
    def from_spec(cls, experiment, input_shape, grid_shape=None):
        """Build from an ``Experiment`` message for a network input (height, width)."""
        names = target_class_names(experiment)
        params = RasterizerParams.from_spec(
            experiment.bbox_rasterizer_config, names, experiment.model_config.objective_set.bbox
        )
        mask_filter = None
        if experiment.HasField("loss_mask_label_filter"):
            mask_filter = LossMaskFilter.from_spec(
                experiment.loss_mask_label_filter, names, input_shape, grid_shape
            )
        return cls(BboxRasterizer(params, input_shape, grid_shape), mask_filter)

    def __call__(self, batch):
        """Targets of a batch.

        Args:
            batch: dict with ``boxes`` float32 [B, M, 4] (x1, y1, x2, y2 input pixels),
                ``classes`` int32 [B, M] (-1 = padding / unmapped), ``num_boxes`` int32 [B].
        Returns:
            dict ``cov``, ``cov_norm`` [B, Gh, Gw, C], ``bbox`` [B, Gh, Gw, 4C] and, with a
            loss-mask filter, ``loss_masks`` = {``cov``, ``bbox``: [B, Gh, Gw, C]}.
        """
        boxes, classes = batch["boxes"], batch["classes"]
        num_boxes = batch.get("num_boxes")
        targets = self.rasterizer(boxes, classes, num_boxes)
        if self.loss_mask_filter is not None:
            targets["loss_masks"] = self.loss_mask_filter(
                boxes, classes, num_boxes, cov=targets["cov"]
            )
        return targets
