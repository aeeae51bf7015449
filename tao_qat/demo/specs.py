"""Spec files of the demo, derived from the example specs in examples/trees/specs/.

Each spec is the example message with the demo's sizes and absolute paths filled in, written
back in protobuf text format, so the demo's workdir holds ordinary TAO spec files a user can
re-run with the ``qat`` commands by hand.
"""

from google.protobuf import text_format

from tao_qat.common.fileio import atomic_write_text
from tao_qat.demo.settings import EXAMPLE_DIR
from tao_qat.spec.loader import load_dataset_export_spec, load_experiment_spec

TRAIN_TEMPLATE = EXAMPLE_DIR / "specs" / "trees_train_resnet18.txt"
CONVERT_TEMPLATES = {
    "train": EXAMPLE_DIR / "specs" / "trees_tfrecords_train.txt",
    "val": EXAMPLE_DIR / "specs" / "trees_tfrecords_val.txt",
}
TILE_SIZE = (384, 384)


def image_dir(split):
    """Absolute folder of the vendored tiles of ``split`` ("train" / "val")."""
    return (EXAMPLE_DIR / "data" / split / "image_2").resolve()


def label_dir(split):
    """Absolute folder of the KITTI labels of ``split``."""
    return (EXAMPLE_DIR / "data" / split / "label_2").resolve()


def write_spec(message, path, header=""):
    """Write ``message`` as text format (with an optional ``#`` comment header) atomically."""
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    atomic_write_text(path, comment + text_format.MessageToString(message))
    return path


def convert_spec(split):
    """The DatasetExportConfig of ``split`` ("train" / "val") with absolute KITTI paths."""
    spec = load_dataset_export_spec(CONVERT_TEMPLATES[split])
    root = str((EXAMPLE_DIR / "data" / split).resolve())
    spec.kitti_config.root_directory_path = root
    spec.image_directory_path = root
    return spec


def experiment_spec(
    settings,
    tfrecords_dir,
    epochs,
    *,
    pretrained_model_file=None,
    load_graph=False,
    enable_qat=False,
    max_learning_rate=None,
):
    """The tree training spec for one of the demo's trainings.

    Args:
        settings: DemoSettings; tfrecords_dir: folder with the converted train/ and val/ shards.
        epochs: num_epochs; pretrained_model_file, load_graph, enable_qat: as in the spec.
        max_learning_rate: peak learning rate (default settings.max_learning_rate).
    """
    spec = load_experiment_spec(TRAIN_TEMPLATE)
    width, height = settings.image_size
    pre = spec.augmentation_config.preprocessing
    pre.output_image_width, pre.output_image_height = width, height
    pre.enable_auto_resize = (width, height) != TILE_SIZE
    spatial = spec.augmentation_config.spatial_augmentation
    spatial.translate_max_x = spatial.translate_max_y = round(24 * width / TILE_SIZE[0])
    for source, split in (
        (spec.dataset_config.data_sources[0], "train"),
        (spec.dataset_config.validation_data_source, "val"),
    ):
        source.tfrecords_path = str(tfrecords_dir / split / f"trees_{split}*")
        source.image_directory_path = str((EXAMPLE_DIR / "data" / split).resolve())
    model = spec.model_config
    model.num_layers = settings.num_layers
    if pretrained_model_file:
        model.pretrained_model_file = str(pretrained_model_file)
        model.load_graph = load_graph
    training = spec.training_config
    training.batch_size_per_gpu = settings.batch_size
    training.num_epochs = epochs
    training.checkpoint_interval = max(1, min(training.checkpoint_interval, epochs // 4 or 1))
    training.enable_qat = enable_qat
    schedule = training.learning_rate.soft_start_annealing_schedule
    schedule.max_learning_rate = max_learning_rate or settings.max_learning_rate
    schedule.min_learning_rate = min(schedule.min_learning_rate, schedule.max_learning_rate / 10)
    evaluation = spec.evaluation_config
    period = max(1, min(settings.validation_period, epochs))
    evaluation.first_validation_epoch = period
    evaluation.validation_period_during_training = period
    return spec


def inference_spec(experiment, model):
    """The ``qat inference`` spec matching ``experiment``: network size, classes and the same
    clustering, KITTI dumps on, overlays off (the demo draws its own comparison pictures);
    ``model`` fills tlt_config.model (``-m`` overrides it)."""
    from tao_qat.spec.proto.inference_pb2 import Inference

    spec = Inference()
    pre = experiment.augmentation_config.preprocessing
    config = spec.inferencer_config
    config.tlt_config.model = str(model)
    config.batch_size = experiment.training_config.batch_size_per_gpu
    config.image_width, config.image_height = pre.output_image_width, pre.output_image_height
    config.image_channels = pre.output_image_channel or 3
    names = [c.name for c in experiment.cost_function_config.target_classes]
    config.target_classes.extend(names)
    handler = spec.bbox_handler_config
    handler.kitti_dump = True
    handler.disable_overlay = True
    for name in names:
        entry = handler.classwise_bbox_handler_config[name]
        entry.clustering_config.CopyFrom(
            experiment.postprocessing_config.target_class_config[name].clustering_config
        )
        entry.confidence_model = "aggregate_cov"
        entry.output_map = name
    return spec
