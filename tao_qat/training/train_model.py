"""The Keras model ``fit`` drives: a DetectNet_v2 detector plus its cost in ``train_step``.

The detector stays a plain functional model (saved as .hdf5, pruned, quantized); this wrapper
only adds the training step: forward, task cost + regularisation, (loss-scaled) gradients,
optimizer update, and metrics aggregated correctly across replicas.
"""

from tao_qat.common.tensorflow_setup import keras, tf
from tao_qat.inference.predictor import output_indices


class DetectNetTrainModel(keras.Model):
    """Wraps ``detector`` for ``fit``.

    Args:
        detector: functional model, input images [B, H, W, C], outputs named output_cov /
            output_bbox.
        cost: ``objectives.cost.DetectNetCost``.
    Batches are the input pipeline's dicts with an added ``targets`` dict (rasterizer output).
    Metrics: ``loss`` (task cost + regularisation), ``task_cost``, and the per-(class, objective)
    mean costs of the epoch in ``component_costs.result()`` (float32 [C, 2]).
    """

    def __init__(self, detector, cost, **kwargs):
        super().__init__(**kwargs)
        self.detector = detector
        self.cost = cost
        self._cov, self._bbox = output_indices(detector.output_names)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.task_cost_tracker = keras.metrics.Mean(name="task_cost")
        self.component_costs = keras.metrics.MeanTensor(name="component_costs")

    @property
    def metrics(self):
        return [self.loss_tracker, self.task_cost_tracker, self.component_costs]

    def call(self, images, training=False):
        return self.detector(images, training=training)

    def task_cost(self, batch, cov, bbox):
        """(task cost scalar, per-(class, objective) costs [C, 2]) of the network outputs
        ``cov`` [B, H/16, W/16, C] and ``bbox`` [B, H/16, W/16, 4C] against ``batch["targets"]``."""
        targets = batch["targets"]
        return self.cost(targets, cov, bbox, batch["source_weight"], targets.get("loss_masks"))

    def train_step(self, batch):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        variables = self.detector.trainable_variables
        with tf.GradientTape() as tape:
            outputs = self.detector(batch["images"], training=True)
            task_cost, components = self.task_cost(batch, outputs[self._cov],
                                                   outputs[self._bbox])
            regularization = (
                tf.add_n([tf.cast(v, tf.float32) for v in self.detector.losses])
                if self.detector.losses
                else tf.constant(0.0)
            )
            loss = task_cost + regularization
            # Gradients are summed over replicas: scale so the sum is the global-batch mean.
            replica_loss = loss / tf.cast(replicas, tf.float32)
            if isinstance(self.optimizer, keras.mixed_precision.LossScaleOptimizer):
                replica_loss = self.optimizer.get_scaled_loss(replica_loss)
        gradients = tape.gradient(replica_loss, variables)
        if isinstance(self.optimizer, keras.mixed_precision.LossScaleOptimizer):
            gradients = self.optimizer.get_unscaled_gradients(gradients)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        self.loss_tracker.update_state(loss)
        self.task_cost_tracker.update_state(task_cost)
        self.component_costs.update_state(components)
        return {"loss": self.loss_tracker.result(), "task_cost": self.task_cost_tracker.result()}
