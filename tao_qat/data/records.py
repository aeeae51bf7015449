"""A split's TFRecords read into memory: image paths, mapped class ids, boxes (§1.2, §10).

``load_split(experiment, split)`` resolves the data sources of a split ("train", "validation" or
"train_eval"), reads every tf.train.Example once (only paths and labels; images stay on disk),
maps source classes through ``target_class_mapping`` to ids in
``cost_function_config.target_classes`` (unmapped objects dropped), and checks that every image
exists. Relative paths in the spec resolve against ``spec_dir`` (the spec file's folder), or the
working directory when it is None, as in TAO.
"""

import glob
import logging
import os
from collections import Counter
from dataclasses import dataclass

import numpy as np

from tao_qat.common.errors import DataError, SpecError, UsageError
from tao_qat.common.tensorflow_setup import tf
from tao_qat.data import features as F
from tao_qat.data.decode import check_images_exist
from tao_qat.spec.defaults import target_class_names
from tao_qat.spec.paths import resolve_spec_path

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "train_eval")
_PARSE_BATCH = 1024


@dataclass(frozen=True)
class SourceFiles:
    """The TFRecord files of one DataSource, with where they came from in the spec."""

    field_path: str  # e.g. "dataset_config.data_sources[0]"
    pattern: str  # the resolved glob
    files: tuple
    image_directory: str
    source_weight: float


@dataclass
class SplitRecords:
    """All frames of a split, in file order.

    Attributes:
        split: "train", "validation" or "train_eval".
        class_names: target class names; class id i is class_names[i].
        frame_ids: list of str (TFRecord ``frame/id``).
        image_paths: list of str, ``<image_directory_path>/<frame_id>.<image_extension>``.
        source_weights: float32 [N] (DataSource.source_weight, 0 -> 1.0).
        widths, heights: int64 [N] image sizes stored in the records (0 if absent).
        boxes: float32 [T, 4] (x1, y1, x2, y2) in image pixels, all frames concatenated.
        classes: int32 [T] class ids.
        row_splits: int64 [N + 1]; frame i owns boxes[row_splits[i]:row_splits[i + 1]].
        files: tuple of the TFRecord paths read.
    """

    split: str
    class_names: tuple
    frame_ids: list
    image_paths: list
    source_weights: np.ndarray
    widths: np.ndarray
    heights: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    row_splits: np.ndarray
    files: tuple

    def __len__(self):
        return len(self.frame_ids)

    @property
    def max_boxes(self):
        """Largest number of objects in one frame (at least 1)."""
        return max(1, int(np.max(np.diff(self.row_splits), initial=0)))

    def frame_boxes(self, index):
        """(boxes float32 [n, 4], classes int32 [n]) of frame ``index``."""
        lo, hi = self.row_splits[index], self.row_splits[index + 1]
        return self.boxes[lo:hi], self.classes[lo:hi]


def _source_files(source, field_path, spec_dir):
    if not source.tfrecords_path:
        raise SpecError(f"{field_path}.tfrecords_path: must not be empty")
    if not source.image_directory_path:
        raise SpecError(f"{field_path}.image_directory_path: must not be empty")
    if source.source_weight < 0:
        raise SpecError(f"{field_path}.source_weight: must be >= 0, got {source.source_weight}")
    pattern = resolve_spec_path(source.tfrecords_path, spec_dir)
    # TAO globs every file; dataset_convert's <prefix>_warning.json is not a TFRecord.
    files = sorted(f for f in glob.glob(pattern) if os.path.isfile(f) and not f.endswith(".json"))
    if not files:
        raise DataError(f"{field_path}.tfrecords_path: {pattern!r} matches no file")
    return SourceFiles(
        field_path=field_path,
        pattern=pattern,
        files=tuple(files),
        image_directory=resolve_spec_path(source.image_directory_path, spec_dir),
        source_weight=float(source.source_weight) or 1.0,
    )


def split_sources(dataset_config, split, spec_dir=None):
    """The SourceFiles of ``split`` (TAO's validation fold / validation_data_source rules).

    Raises DataError when a glob matches nothing or the split has no file.
    """
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    field = "dataset_config"
    kind = dataset_config.WhichOneof("dataset_split_type")
    if split == "validation" and kind == "validation_data_source":
        source = _source_files(
            dataset_config.validation_data_source, f"{field}.validation_data_source", spec_dir
        )
        return [source]
    if split == "validation" and kind is None:
        raise DataError(
            f"{field}: no validation data (set validation_fold or validation_data_source)"
        )
    if not dataset_config.data_sources:
        raise SpecError(f"{field}.data_sources: at least one data source is required")
    sources = [
        _source_files(s, f"{field}.data_sources[{i}]", spec_dir)
        for i, s in enumerate(dataset_config.data_sources)
    ]
    if kind != "validation_fold":
        return sources
    tag = f"fold-{dataset_config.validation_fold:03d}-of-"
    want_fold = split == "validation"
    selected = []
    for s in sources:
        files = tuple(f for f in s.files if (tag in os.path.basename(f)) == want_fold)
        if files:
            selected.append(
                SourceFiles(s.field_path, s.pattern, files, s.image_directory, s.source_weight)
            )
    if not selected:
        patterns = ", ".join(repr(s.pattern) for s in sources)
        which = "contains" if want_fold else "is outside"
        raise DataError(
            f"{field}.validation_fold: no TFRecord file of {patterns} {which} "
            f"validation fold {dataset_config.validation_fold} (file names with {tag!r})"
        )
    return selected


def class_mapping(dataset_config, class_names):
    """{lower-cased source class: class id}. An empty target_class_mapping maps each target
    class name (lower-cased) to itself. Mapped targets that are not target classes are
    dropped with a warning."""
    mapping = {k.lower(): v for k, v in dataset_config.target_class_mapping.items()}
    if not mapping:
        mapping = {name.lower(): name for name in class_names}
    ids = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({v for v in mapping.values() if v not in ids})
    if unknown:
        logger.warning(
            "dataset_config.target_class_mapping: target class(es) %s are not in "
            "cost_function_config.target_classes %s; their objects are ignored",
            unknown,
            list(class_names),
        )
    return {k: ids[v] for k, v in mapping.items() if v in ids}


def _parse_spec():
    ragged = {name: tf.io.RaggedFeature(tf.float32) for name in (F.X1, F.Y1, F.X2, F.Y2)}
    ragged[F.OBJECT_CLASS] = tf.io.RaggedFeature(tf.string)
    return {
        F.FRAME_ID: tf.io.FixedLenFeature([], tf.string),
        F.FRAME_WIDTH: tf.io.FixedLenFeature([], tf.int64, default_value=0),
        F.FRAME_HEIGHT: tf.io.FixedLenFeature([], tf.int64, default_value=0),
        **ragged,
    }


def _read_file(path):
    """Yield (frame_id, width, height, classes [n] str, boxes [n, 4]) per record of ``path``."""
    spec = _parse_spec()
    dataset = tf.data.TFRecordDataset(path).batch(_PARSE_BATCH)
    dataset = dataset.map(lambda serialized: tf.io.parse_example(serialized, spec))
    try:
        for batch in dataset:
            lengths = [
                batch[k].row_lengths().numpy() for k in (F.OBJECT_CLASS, F.X1, F.Y1, F.X2, F.Y2)
            ]
            frame_ids = [f.decode("utf-8") for f in batch[F.FRAME_ID].numpy()]
            bad = np.flatnonzero(np.any(np.stack(lengths) != lengths[0], axis=0))
            if bad.size:
                raise DataError(
                    f"{path}: frame {frame_ids[bad[0]]!r} has different numbers of object "
                    f"classes and box coordinates"
                )
            coords = np.stack(
                [batch[k].flat_values.numpy() for k in (F.X1, F.Y1, F.X2, F.Y2)], axis=1
            )
            names = [c.decode("utf-8").lower() for c in batch[F.OBJECT_CLASS].flat_values.numpy()]
            splits = np.concatenate([[0], np.cumsum(lengths[0])])
            widths = batch[F.FRAME_WIDTH].numpy()
            heights = batch[F.FRAME_HEIGHT].numpy()
            for i, frame_id in enumerate(frame_ids):
                lo, hi = splits[i], splits[i + 1]
                yield frame_id, widths[i], heights[i], names[lo:hi], coords[lo:hi]
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as exc:
        reason = str(exc).strip().splitlines()[0][:200]
        raise DataError(f"{path}: not a readable TFRecord of tf.train.Example ({reason})") from None


def read_records(sources, dataset_config, class_names, split="train"):
    """Read all records of ``sources`` (list of SourceFiles) into a SplitRecords."""
    mapping = class_mapping(dataset_config, class_names)
    extension = dataset_config.image_extension.lstrip(".")
    if not extension:
        raise SpecError('dataset_config.image_extension: must not be empty (e.g. "png")')
    frame_ids, paths, origins, weights, widths, heights = [], [], [], [], [], []
    boxes, classes, counts = [], [], [0]
    dropped, too_small = Counter(), 0
    for source in sources:
        for path in source.files:
            for frame_id, width, height, names, coords in _read_file(path):
                ids = np.array([mapping.get(n, -1) for n in names], np.int32)
                dropped.update(n for n, i in zip(names, ids, strict=True) if i < 0)
                # TAO drops boxes under 1 x 1 pixel (and inverted ones) when parsing.
                size_ok = ((coords[:, 2] - coords[:, 0]) >= 1.0) & (
                    (coords[:, 3] - coords[:, 1]) >= 1.0
                )
                keep = (ids >= 0) & size_ok
                too_small += int(np.sum((ids >= 0) & ~size_ok))
                frame_ids.append(frame_id)
                paths.append(os.path.join(source.image_directory, f"{frame_id}.{extension}"))
                origins.append(f"{path}, frame/id {frame_id!r}")
                weights.append(source.source_weight)
                widths.append(width)
                heights.append(height)
                boxes.append(coords[keep])
                classes.append(ids[keep])
                counts.append(int(keep.sum()))
    where = ", ".join(s.field_path for s in sources)
    if dropped:
        logger.warning(
            "%s split (%s): %d object(s) of classes not in dataset_config.target_class_mapping "
            "ignored: %s",
            split,
            where,
            sum(dropped.values()),
            ", ".join(f"{name} {count}" for name, count in sorted(dropped.items())),
        )
    if too_small:
        logger.warning(
            "%s split (%s): %d object(s) with boxes under 1 x 1 pixel or inverted ignored",
            split,
            where,
            too_small,
        )
    check_images_exist(paths, origins)
    return SplitRecords(
        split=split,
        class_names=tuple(class_names),
        frame_ids=frame_ids,
        image_paths=paths,
        source_weights=np.asarray(weights, np.float32),
        widths=np.asarray(widths, np.int64),
        heights=np.asarray(heights, np.int64),
        boxes=np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32),
        classes=np.concatenate(classes).astype(np.int32) if classes else np.zeros(0, np.int32),
        row_splits=np.cumsum(counts).astype(np.int64),
        files=tuple(f for s in sources for f in s.files),
    )


def load_split(experiment, split, spec_dir=None):
    """Read the records of ``split`` of an Experiment spec.

    Raises DataError if a glob matches no file, an image is missing, or the split is empty.
    """
    if experiment.dataset_config.sampling_mode == experiment.dataset_config.UNIFORM:
        logger.warning(
            "dataset_config.sampling_mode UNIFORM is not supported: frames of all data "
            "sources are shuffled together (each source in proportion to its size)"
        )
    sources = split_sources(experiment.dataset_config, split, spec_dir)
    records = read_records(
        sources, experiment.dataset_config, target_class_names(experiment), split
    )
    if not len(records):
        where = ", ".join(f"{s.field_path}.tfrecords_path ({s.pattern!r})" for s in sources)
        raise DataError(f"{where}: no record: the {split} split is empty")
    return records
