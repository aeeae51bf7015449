"""Distribution strategy for ``--gpus N`` and multi-node training (reference §3.6, §9).

TAO runs one Horovod process per GPU; here one process drives all local GPUs:

- ``gpus`` 0 or 1, no ``TF_CONFIG``: TensorFlow's default strategy (one device).
- ``gpus`` N > 1: ``tf.distribute.MirroredStrategy`` over ``/gpu:0 .. /gpu:N-1`` (synchronous,
  gradients all-reduced, i.e. averaged over the global batch).
- ``TF_CONFIG`` set: ``tf.distribute.MultiWorkerMirroredStrategy`` (one process per node, each
  using its local GPUs, gradients all-reduced over all workers). Example for two nodes (run the
  same command on both, with ``"index"`` 0 on the first and 1 on the second)::

      TF_CONFIG='{"cluster": {"worker": ["node1:12345", "node2:12345"]},
                  "task": {"type": "worker", "index": 0}}'

  Worker 0 is the chief: it alone writes checkpoints, status.json and TensorBoard events.

The global batch is ``batch_size_per_gpu * num_replicas``; the learning rate is not rescaled
(TAO does not rescale it either). Machines without GPUs can exercise the multi-replica code with
logical CPU devices: ``configure_logical_cpus(n)`` before TensorFlow initialises its devices,
then ``build_strategy(n, allow_cpu=True)``.
"""

import json
import logging
import math
import os

from tao_qat.common.errors import UsageError
from tao_qat.common.tensorflow_setup import tf

logger = logging.getLogger(__name__)

__all__ = [
    "build_strategy",
    "configure_logical_cpus",
    "global_batch_size",
    "is_chief",
    "num_replicas",
    "read_tf_config",
    "steps_per_epoch",
]


def configure_logical_cpus(n):
    """Split the physical CPU into ``n`` logical devices (``/cpu:0`` .. ``/cpu:n-1``).

    Must run before TensorFlow initialises its devices (before any op or variable is created).
    Raises:
        RuntimeError: TensorFlow's devices are already initialised.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == n:
        return
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
    )


def read_tf_config():
    """The parsed ``TF_CONFIG`` environment variable (dict), or None if unset/empty.

    Raises:
        UsageError: TF_CONFIG is not JSON or lacks ``cluster`` / ``task``.
    """
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(f"TF_CONFIG: not valid JSON ({exc.msg})") from None
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise UsageError('TF_CONFIG: needs "cluster" and "task" (see docs/training.md)')
    task = config["task"]
    members = config["cluster"].get(task.get("type"), [])
    if not isinstance(task.get("index"), int) or not 0 <= task["index"] < len(members):
        raise UsageError(f"TF_CONFIG: task {task} is not in the cluster")
    return config


def build_strategy(gpus=1, allow_cpu=False):
    """The ``tf.distribute.Strategy`` for ``gpus`` GPUs per process (see the module doc).

    Args:
        gpus: GPUs to use in this process (0 and 1 both mean a single device).
        allow_cpu: when fewer than ``gpus`` GPUs exist, mirror over logical CPU devices
            instead of failing (tests, development; see ``configure_logical_cpus``).
    Raises:
        UsageError: fewer GPUs (or logical CPUs) than requested.
    """
    if gpus < 0:
        raise UsageError(f"--gpus: must be >= 0, got {gpus}")
    if read_tf_config() is not None:
        _limit_visible_gpus(gpus)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        logger.info("multi-worker training: %d replicas in sync", strategy.num_replicas_in_sync)
        return strategy
    if gpus <= 1:
        return tf.distribute.get_strategy()
    found = tf.config.list_physical_devices("GPU")
    if len(found) >= gpus:
        devices = [f"/gpu:{i}" for i in range(gpus)]
    elif allow_cpu:
        cpus = tf.config.list_logical_devices("CPU")
        if len(cpus) < gpus:
            raise UsageError(
                f"--gpus {gpus}: no GPU and only {len(cpus)} logical CPU devices "
                "(call configure_logical_cpus first)"
            )
        devices = [f"/cpu:{i}" for i in range(gpus)]
    else:
        raise UsageError(f"--gpus {gpus}: only {len(found)} GPU(s) visible")
    logger.info("mirrored training over %s", ", ".join(devices))
    return tf.distribute.MirroredStrategy(devices=devices)


def _limit_visible_gpus(gpus):
    """Let a multi-worker process use only its first ``gpus`` GPUs (best effort)."""
    found = tf.config.list_physical_devices("GPU")
    if len(found) > max(gpus, 1) or (gpus == 0 and found):
        try:
            tf.config.set_visible_devices(found[:gpus], "GPU")
        except RuntimeError:
            logger.warning("could not restrict visible GPUs: TensorFlow already initialised")


def num_replicas(strategy):
    """Replicas trained in sync (GPUs over all workers)."""
    return strategy.num_replicas_in_sync


def global_batch_size(batch_size_per_gpu, strategy):
    """Images per optimizer step: ``batch_size_per_gpu * num_replicas``."""
    return int(batch_size_per_gpu) * num_replicas(strategy)


def steps_per_epoch(num_samples, batch_size_per_gpu, replicas=1):
    """TAO's steps per epoch: ceil(ceil(num_samples / batch_size_per_gpu) / replicas)."""
    return math.ceil(math.ceil(num_samples / batch_size_per_gpu) / replicas)


def is_chief(strategy=None):
    """True in the process that writes outputs: always, except on non-chief workers.

    With ``TF_CONFIG``, the chief is task ``chief`` if the cluster has one, else worker 0.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is not None and resolver.task_type is not None:
        task_type, task_id = resolver.task_type, resolver.task_id
        has_chief = "chief" in resolver.cluster_spec().as_dict()
    else:
        config = read_tf_config()
        if config is None:
            return True
        task_type, task_id = config["task"]["type"], config["task"]["index"]
        has_chief = "chief" in config["cluster"]
    if has_chief:
        return task_type == "chief"
    return task_type == "worker" and task_id == 0
