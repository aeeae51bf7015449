"""TAO's code-level substitutes for proto3 zero values, as small pure functions (TAO digest §1-§10).

proto3 cannot tell "unset" from 0 / "" / false, so TAO replaces some zeros in code. Every
module reads these fields through the helpers below instead of repeating the substitutions.
"""

DEFAULT_NUM_LAYERS = 18
DEFAULT_CHECKPOINT_INTERVAL = 10  # epochs
DEFAULT_SOURCE_WEIGHT = 1.0
DEFAULT_STRIDE = 16  # input pixels per output grid cell
DEFAULT_KITTI_IMAGE_EXTENSION = ".png"
DEFAULT_ROTATE_PROBABILITY = 1.0
DEFAULT_SCALAR_LOGGING_FREQUENCY = 10  # points per epoch
DEFAULT_INFREQUENT_LOGGING_FREQUENCY = 1  # epochs
DEFAULT_INFERENCE_IMAGE_SIZE = (544, 960)  # (height, width) in pixels
DEFAULT_INFERENCE_BATCH_SIZE = 1
DEFAULT_IMAGE_CHANNELS = 3


def _or(value, default):
    return value if value else default


def num_layers(model_config):
    """ResNet depth: ``model_config.num_layers``, 0 -> 18."""
    return _or(model_config.num_layers, DEFAULT_NUM_LAYERS)


def checkpoint_interval(training_config):
    """Epochs between checkpoints: ``training_config.checkpoint_interval``, 0 -> 10."""
    return _or(training_config.checkpoint_interval, DEFAULT_CHECKPOINT_INTERVAL)


def source_weight(data_source):
    """Per-frame loss weight of a DataSource: ``source_weight``, 0 -> 1.0."""
    return float(_or(data_source.source_weight, DEFAULT_SOURCE_WEIGHT))


def rotate_probability(spatial_augmentation):
    """Probability of applying the random rotation: ``rotate_probability``, 0 -> 1.0."""
    return float(_or(spatial_augmentation.rotate_probability, DEFAULT_ROTATE_PROBABILITY))


def scalar_logging_frequency(visualizer_config):
    """Scalar summary points per epoch: ``scalar_logging_frequency``, 0 -> 10."""
    return _or(visualizer_config.scalar_logging_frequency, DEFAULT_SCALAR_LOGGING_FREQUENCY)


def infrequent_logging_frequency(visualizer_config):
    """Epochs between image summaries: ``infrequent_logging_frequency``, 0 -> 1."""
    return _or(visualizer_config.infrequent_logging_frequency, DEFAULT_INFREQUENT_LOGGING_FREQUENCY)


def kitti_image_extension(kitti_config):
    """Image file extension WITH the dot for dataset_convert: ``image_extension``, "" -> ".png"."""
    return _or(kitti_config.image_extension, DEFAULT_KITTI_IMAGE_EXTENSION)


def inference_stride(inferencer_config):
    """Output grid stride in input pixels: ``inferencer_config.stride``, 0 -> 16."""
    return _or(inferencer_config.stride, DEFAULT_STRIDE)


def inference_image_size(inferencer_config):
    """Network input (height, width) in pixels; each 0 -> TAO's 544 x 960."""
    return (
        _or(inferencer_config.image_height, DEFAULT_INFERENCE_IMAGE_SIZE[0]),
        _or(inferencer_config.image_width, DEFAULT_INFERENCE_IMAGE_SIZE[1]),
    )


def inference_batch_size(inferencer_config):
    """Inference batch size: ``inferencer_config.batch_size``, 0 -> 1 (ours; TAO rejects 0)."""
    return _or(inferencer_config.batch_size, DEFAULT_INFERENCE_BATCH_SIZE)


def inference_image_channels(inferencer_config):
    """Input channels: ``inferencer_config.image_channels``, 0 -> 3 (ours; TAO rejects 0)."""
    return _or(inferencer_config.image_channels, DEFAULT_IMAGE_CHANNELS)


def target_class_names(experiment):
    """Target class names in network output order (``cost_function_config.target_classes``)."""
    return [target.name for target in experiment.cost_function_config.target_classes]


def input_shape(experiment):
    """Network input (height, width, channels) from ``augmentation_config.preprocessing``."""
    pre = experiment.augmentation_config.preprocessing
    return (pre.output_image_height, pre.output_image_width, pre.output_image_channel)


def crop_window(preprocessing):
    """Crop box (left, top, right, bottom) in pixels; all four 0 -> (0, 0, width, height)."""
    box = (
        preprocessing.crop_left,
        preprocessing.crop_top,
        preprocessing.crop_right,
        preprocessing.crop_bottom,
    )
    if not any(box):
        return (0, 0, preprocessing.output_image_width, preprocessing.output_image_height)
    return box


def validation_epochs(evaluation_config, num_epochs):
    """1-based epochs after which validation runs: first + k * period (<= num_epochs), plus
    always the last epoch. E.g. first 110, period 10, 120 epochs -> [110, 120]."""
    first = evaluation_config.first_validation_epoch
    period = evaluation_config.validation_period_during_training
    epochs = set(range(first, num_epochs + 1, period)) if period > 0 and first > 0 else set()
    epochs.add(num_epochs)
    return sorted(e for e in epochs if 1 <= e <= num_epochs)
