"""The tf.data input pipeline: records -> decoded, preprocessed, augmented batches (§1.2, §1.3, §5).

``build_dataset(experiment, split)`` returns batches of dicts:
    images        float32 [B, H, W, C]  RGB (or grey) in [0, 1], NHWC
    boxes         float32 [B, M, 4]     (x1, y1, x2, y2) in network-input pixels, zero-padded
    classes       int32   [B, M]        index into cost_function_config.target_classes, -1 = pad
    num_boxes     int32   [B]
    source_weight float32 [B]           DataSource.source_weight (0 -> 1.0)
    frame_id      string  [B]           TFRecord frame/id
M is ``max_boxes`` (default: most objects in one frame of the split). "train" is shuffled,
repeated and augmented; "validation" and "train_eval" (the training set, for
--use_training_set) are neither. Per element: decode (JPEG/PNG) -> one warp with the
preprocessing and augmentation matrix -> colour matrix -> boxes through the same matrix,
clipped and filtered. Randomness is stateless, seeded by (random_seed, element position), so
equal seeds give equal streams, and ``start`` (a resumed training run) continues a stream
exactly where an uninterrupted run would be. Decode failures name the file (see
``tao_qat.data.decode``).
"""

import logging
import math

from tao_qat.common.errors import SpecError
from tao_qat.common.tensorflow_setup import tf
from tao_qat.data import augment
from tao_qat.data.color import ColorAugmentation, apply_color_matrix, sample_color_matrix
from tao_qat.data.decode import decode_images
from tao_qat.data.records import load_split

logger = logging.getLogger(__name__)

# Decoded images are cached in memory (skipping decode after the first epoch) when their
# estimated size is at most this many bytes and ``cache`` is None.
CACHE_MAX_BYTES = 512 * 1024 * 1024
_AUTOTUNE = tf.data.AUTOTUNE


def count_examples(experiment, split, spec_dir=None):
    """Number of frames (records) in ``split``; use for steps per epoch."""
    return len(load_split(experiment, split, spec_dir))


def steps_per_epoch(num_examples, batch_size):
    """Batches needed to see every example once: ceil(num_examples / batch_size)."""
    return math.ceil(num_examples / batch_size)


def augmentation_from_spec(augmentation_config):
    """(Preprocessing, SpatialAugmentation | None, ColorAugmentation | None) of the spec."""
    pre = augment.Preprocessing.from_spec(augmentation_config.preprocessing)
    field = "augmentation_config.preprocessing"
    if pre.width <= 0 or pre.height <= 0:
        raise SpecError(f"{field}.output_image_width/height: must be > 0")
    if pre.channels not in (1, 3):
        raise SpecError(f"{field}.output_image_channel: must be 1 or 3, got {pre.channels}")
    p = augmentation_config.preprocessing
    if p.output_image_min or p.output_image_max:
        raise SpecError(
            f"{field}.output_image_min/max: resizing with a kept aspect ratio is not supported; "
            "use enable_auto_resize or images at the network size"
        )
    spatial = None
    if augmentation_config.HasField("spatial_augmentation"):
        spatial = augment.SpatialAugmentation.from_spec(augmentation_config.spatial_augmentation)
        if spatial.zoom_min <= 0 or spatial.zoom_min > spatial.zoom_max:
            raise SpecError(
                "augmentation_config.spatial_augmentation.zoom_min: must be > 0 and <= zoom_max"
            )
    color = None
    if augmentation_config.HasField("color_augmentation") and pre.channels == 3:
        color = ColorAugmentation.from_spec(augmentation_config.color_augmentation)
        color = None if color.is_identity else color
    return pre, spatial, color


def make_example_fn(pre, spatial, color, max_boxes, seed):
    """Per-element map: (position k, decoded element) -> output example dict.

    Args:
        pre: augment.Preprocessing; spatial / color: augmentation params or None (= off).
        max_boxes: M; extra boxes (rare: more than M objects) are cut.
        seed: int random seed; element k uses the stateless seed (seed, k).
    """

    def example_fn(position, element):
        image = element["image"]
        shape = tf.shape(image)
        matrix = augment.preprocessing_matrix(pre, shape[1], shape[0])
        pair = tf.stack([tf.cast(seed, tf.int64), tf.cast(position, tf.int64)])
        spatial_seed, color_seed = tf.unstack(tf.random.experimental.stateless_split(pair, 2))
        if spatial is not None:
            random = augment.sample_spatial_matrix(spatial, pre.width, pre.height, spatial_seed)
            matrix = random @ matrix
        image = augment.warp_image(image, matrix, pre.height, pre.width)
        if color is not None:
            image = apply_color_matrix(image, sample_color_matrix(color, color_seed))
        boxes = augment.transform_boxes(element["boxes"], matrix, pre.width, pre.height)
        boxes, classes = augment.clip_and_filter_boxes(
            boxes,
            element["classes"],
            pre.width,
            pre.height,
            pre.min_box_width,
            pre.min_box_height,
        )
        boxes, classes = boxes[:max_boxes], classes[:max_boxes]
        return {
            "images": tf.ensure_shape(image, [pre.height, pre.width, pre.channels]),
            "boxes": boxes,
            "classes": classes,
            "num_boxes": tf.shape(classes)[0],
            "source_weight": element["source_weight"],
            "frame_id": element["frame_id"],
        }

    return example_fn


def _records_dataset(records):
    """Dataset of dicts (image_path, frame_id, source_weight, boxes [n, 4], classes [n])."""
    boxes = tf.RaggedTensor.from_row_splits(records.boxes, records.row_splits)
    classes = tf.RaggedTensor.from_row_splits(records.classes, records.row_splits)
    return tf.data.Dataset.from_tensor_slices(
        {
            "image_path": tf.constant(records.image_paths),
            "frame_id": tf.constant(records.frame_ids),
            "source_weight": records.source_weights,
            "boxes": boxes,
            "classes": classes,
        }
    )


def _should_cache(records, channels, cache):
    if cache is not None:
        return bool(cache)
    sizes = records.widths * records.heights
    if (sizes <= 0).any():
        return False
    return int(sizes.sum()) * channels <= CACHE_MAX_BYTES


def build_dataset(
    experiment,
    split,
    *,
    batch_size=None,
    shuffle=None,
    repeat=None,
    seed=None,
    spec_dir=None,
    targets_fn=None,
    cache=None,
    max_boxes=None,
    drop_remainder=None,
    records=None,
    start=0,
):
    """Build the batched input pipeline of ``split`` ("train", "validation" or "train_eval").

    Args:
        experiment: Experiment message.
        batch_size: default training_config.batch_size_per_gpu.
        shuffle, repeat: default True for "train", False otherwise.
        seed: default experiment.random_seed; drives shuffling and augmentation.
        spec_dir: folder relative spec paths resolve against (None: working directory).
        targets_fn: optional function applied to every batch dict (e.g. the rasterizer).
        cache: keep decoded images in memory (None: when they fit in CACHE_MAX_BYTES).
        max_boxes: M (default: most objects in one frame of the split).
        drop_remainder: default True when repeating (static batch size), else False (the last
            batch is partial; nothing is wrapped around).
        records: a SplitRecords already loaded for this split (skips reading the TFRecords).
        start: number of examples of the (shuffled, repeated) stream to skip, e.g. epochs done
            x steps per epoch x global batch when resuming; the shuffle order and the
            augmentation of every later example are those of an uninterrupted stream.
    Returns:
        tf.data.Dataset of batch dicts (see the module docstring).
    """
    training = split == "train"
    pre, spatial, color = augmentation_from_spec(experiment.augmentation_config)
    if records is None:
        records = load_split(experiment, split, spec_dir)
    if not training:
        spatial = color = None
    batch_size = batch_size or experiment.training_config.batch_size_per_gpu
    if batch_size <= 0:
        raise SpecError("training_config.batch_size_per_gpu: must be > 0")
    shuffle = training if shuffle is None else shuffle
    repeat = training if repeat is None else repeat
    seed = experiment.random_seed if seed is None else seed
    max_boxes = max_boxes or records.max_boxes
    drop_remainder = repeat if drop_remainder is None else drop_remainder
    cached = _should_cache(records, pre.channels, cache)

    dataset = _records_dataset(records)
    if cached:
        dataset = decode_images(dataset, pre.channels).cache()
    if shuffle:
        dataset = dataset.shuffle(len(records), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    if start:
        dataset = dataset.skip(start)  # before decoding when not cached: cheap
    if not cached:
        dataset = decode_images(dataset, pre.channels)
    example_fn = make_example_fn(pre, spatial, color, max_boxes, seed)
    dataset = dataset.enumerate(start=start).map(example_fn, num_parallel_calls=_AUTOTUNE)
    dataset = dataset.padded_batch(
        batch_size,
        padded_shapes={
            "images": [pre.height, pre.width, pre.channels],
            "boxes": [max_boxes, 4],
            "classes": [max_boxes],
            "num_boxes": [],
            "source_weight": [],
            "frame_id": [],
        },
        padding_values={
            "images": 0.0,
            "boxes": 0.0,
            "classes": -1,
            "num_boxes": 0,
            "source_weight": 0.0,
            "frame_id": "",
        },
        drop_remainder=drop_remainder,
    )
    if targets_fn is not None:
        dataset = dataset.map(targets_fn, num_parallel_calls=_AUTOTUNE)
    logger.info(
        "%s split: %d frames, batch %d, augmentation %s, cache %s",
        split,
        len(records),
        batch_size,
        "on" if spatial or color else "off",
        cached,
    )
    return dataset.prefetch(_AUTOTUNE)
