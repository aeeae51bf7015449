"""Demo sizes: the default run (about 15 minutes on 2 free CPU cores) and ``--quick`` (minutes)."""

from dataclasses import asdict, dataclass
from pathlib import Path

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "trees"
DEFAULT_WORKDIR = "qat_demo"


@dataclass(frozen=True)
class DemoSettings:
    """What the demo trains and measures.

    Attributes:
        name: "default" or "quick" (recorded in the workdir; a resume must use the same).
        num_layers: ResNet depth of the detector.
        image_size: network input (width, height) in pixels; the 384x384 tiles are resized
            (``enable_auto_resize``) when it differs.
        batch_size: training_config.batch_size_per_gpu (also evaluation and calibration).
        fp32_epochs / retrain_epochs / qat_epochs: epochs of the three trainings.
        max_learning_rate: peak of the soft-start annealing schedule of the FP32 training and
            the retraining; qat_learning_rate: peak of the QAT fine-tuning schedule.
        validation_period: validate every this many epochs (training curves); the last epoch
            is always validated.
        prune_target_ratio: ``qat prune -pth`` is chosen as the smallest threshold (bisection,
            steps of 1/1024) that keeps at most this fraction of the convolution weights: a
            model trained from scratch has no near-zero filters, so no fixed threshold fits.
        calibration_batches: PTQ calibration batches of ``batch_size`` training images.
        benchmark_runs: timed runs per throughput figure (after 2 warm-up runs).
        benchmark_batch_sizes: batch sizes of the throughput table.
        num_pictures: validation tiles shown side by side (PTQ vs QAT detections).
        noise_points: mAP differences below this (in points) are called "within noise".
    """

    name: str = "default"
    num_layers: int = 10
    image_size: tuple = (384, 384)
    batch_size: int = 4
    fp32_epochs: int = 40
    retrain_epochs: int = 40
    qat_epochs: int = 8
    max_learning_rate: float = 5e-4
    qat_learning_rate: float = 1e-5
    validation_period: int = 5
    prune_target_ratio: float = 0.5
    calibration_batches: int = 8
    benchmark_runs: int = 20
    benchmark_batch_sizes: tuple = (1, 4)
    num_pictures: int = 3
    noise_points: float = 1.0

    def as_dict(self):
        """JSON-ready dict (tuples become lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(self).items()
        }


DEFAULT = DemoSettings()
QUICK = DemoSettings(
    name="quick",
    image_size=(192, 192),
    fp32_epochs=3,
    retrain_epochs=1,
    qat_epochs=1,
    validation_period=1,
    calibration_batches=2,
    benchmark_runs=3,
    num_pictures=2,
)
