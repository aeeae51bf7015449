"""dataset_convert: KITTI or COCO labels -> sharded TFRecords of tf.train.Example (reference §10).

Everything is read and checked first (labels, image sizes, output names); shards are written
only then, to temp files renamed all together at the end (``common.fileio.atomic_paths``), so a
bad label or image, an error or a ``kill -9`` never leaves a partial dataset under the final
names, and the next run cleans up after a killed one. See docs/data.md for what is checked,
what is skipped and reported, and where we differ from TAO.
"""

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate

from tao_qat.common.errors import DataError, OutputExistsError, QatError, SpecError, UsageError
from tao_qat.common.fileio import atomic_paths, atomic_write_text, discard_interrupted
from tao_qat.data import partition as part
from tao_qat.data.sample_modifier import SampleModifier
from tao_qat.data.sources import (
    boxes_outside,
    format_outside,
    read_coco_source,
    read_kitti_source,
)
from tao_qat.spec.paths import resolve_spec_path, spec_dir_of

logger = logging.getLogger(__name__)


@dataclass
class ShardResult:
    """One written TFRecord file: its fold, shard index and the frames in it (write order)."""

    path: Path
    partition: int
    shard: int
    frames: list

    @property
    def num_records(self):
        return len(self.frames)

    def object_counts(self):
        """Counter {TFRecord class name: number of objects} over the shard."""
        return Counter(obj.class_name for frame in self.frames for obj in frame.objects)


@dataclass
class ConversionResult:
    """What a conversion wrote.

    Attributes:
        shards: ShardResult per written file, in write order.
        num_partitions: the spec's partition count (0 = single unnamed partition).
        class_map: {class as written in the labels: class in the TFRecords}.
        skipped: TAO's warning dict {"<label file>_<object index>" or annotation id:
            [int(x1), int(y1), int(x2), int(y2)]} of objects skipped for inverted boxes.
        warning_path: ``<prefix>_warning.json`` if anything was skipped, else None.
        removed: stale files of an earlier run at this prefix removed under ``force``.
        outside: ``BoxOutside`` per written object whose box extends outside its image (kept,
            as TAO does; training clips boxes to the image).
    """

    shards: list
    num_partitions: int
    class_map: dict
    skipped: dict = field(default_factory=dict)
    warning_path: Path | None = None
    removed: list = field(default_factory=list)
    outside: list = field(default_factory=list)

    @property
    def paths(self):
        return [s.path for s in self.shards]

    def partition_records(self):
        """{partition: number of records written}."""
        counts = Counter()
        for s in self.shards:
            counts[s.partition] += s.num_records
        return dict(sorted(counts.items()))

    def partition_objects(self):
        """{partition: Counter {class: objects written}}."""
        counts = {}
        for s in self.shards:
            counts.setdefault(s.partition, Counter()).update(s.object_counts())
        return dict(sorted(counts.items()))

    def format_report(self):
        """Human-readable summary: per-class object counts per partition, the class map."""
        objects, records = self.partition_objects(), self.partition_records()
        folds = list(records)
        header = ["class"] + [f"fold {p}" if self.num_partitions else "all" for p in folds]
        header += ["total"] if len(folds) > 1 else []
        classes = sorted({name for counter in objects.values() for name in counter})
        rows = []
        for name in classes + ["(records)"]:
            row = [records[p] if name == "(records)" else objects[p][name] for p in folds]
            rows.append([name, *row, *([sum(row)] if len(folds) > 1 else [])])
        lines = ["Objects written per partition:", tabulate(rows, header, tablefmt="simple")]
        lines += ["", "Class map (label in source -> label in TFRecords):"]
        lines.append(tabulate(sorted(self.class_map.items()), ["source", "tfrecords"]))
        lines.append(
            "Use the TFRecords labels as keys of dataset_config.target_class_mapping in the "
            "training spec."
        )
        if self.skipped:
            lines.append(
                f"Skipped {len(self.skipped)} object(s) with int(x1) >= int(x2) or "
                f"int(y1) >= int(y2); listed in {self.warning_path}"
            )
        if self.outside:
            lines.append(format_outside(self.outside))
        return "\n".join(lines)


def plan_shards(output_prefix, partitions, num_partitions, shard_counts, sample_modifier=None):
    """Shard each partition and apply the sample modifier; returns ShardResult list (unwritten).

    Empty partitions produce no file (TAO skips them too, but then renumbers the following
    folds; we keep fold numbers stable, see docs/data.md).
    """
    plans = []
    for index, frames in enumerate(partitions):
        if not frames:
            logger.warning("partition %d is empty: no file written for it", index)
            continue
        for shard_index, shard_frames in enumerate(part.shard(frames, shard_counts[index])):
            written = []
            for frame in shard_frames:
                written += sample_modifier.modify(frame, index) if sample_modifier else [frame]
            path = part.shard_path(
                output_prefix, index, num_partitions, shard_index, shard_counts[index]
            )
            plans.append(ShardResult(path, index, shard_index, written))
    return plans


def _check_prefix(output_prefix):
    text = str(output_prefix)
    if not text or text.endswith(("/", os.sep)) or Path(text).is_dir():
        raise UsageError(
            f"-o/--output_filename: {text!r} must be a file name prefix, not a folder "
            "(e.g. out/tfrecords/kitti_trainval)"
        )
    return Path(text)


def write_partitions(
    output_prefix, source, num_partitions, shard_counts, sample_modifier=None, force=False
):
    """Shard ``source`` (SourceData), check for existing outputs, write shards and
    ``<prefix>_warning.json``.

    Args:
        output_prefix: TAO's ``-o/--output_filename`` (a file name prefix).
        source: tao_qat.data.sources.SourceData.
        num_partitions: the spec's value (0 omits the fold part of the names).
        shard_counts: number of shards per partition (0 = one shard, no shard part in names).
        sample_modifier: SampleModifier or None.
        force: overwrite existing outputs and remove stale shards of an earlier run.

    Raises:
        DataError: no frame at all.
        OutputExistsError: an output (or a shard of an earlier run at this prefix) exists and
            ``force`` is false.
    """
    prefix = _check_prefix(output_prefix)
    if not any(source.partitions):
        raise DataError("the dataset has no frames to convert")
    plans = plan_shards(prefix, source.partitions, num_partitions, shard_counts, sample_modifier)
    warning_path = Path(f"{prefix}_warning.json")
    _clean_up_killed_run(prefix)
    existing = part.existing_outputs(prefix)
    if existing and not force:
        raise OutputExistsError(existing[0])
    from tao_qat.data.tfrecord_writer import write_records_to  # imports TensorFlow

    outputs = [plan.path for plan in plans] + ([warning_path] if source.skipped else [])
    with atomic_paths(outputs, pending_marker(prefix)) as temps:
        for plan, temp in zip(plans, temps, strict=False):
            logger.info("writing %s (%d records)", plan.path, plan.num_records)
            write_records_to(temp, plan.frames)
        if source.skipped:
            temps[-1].write_text(json.dumps(source.skipped, indent=2) + "\n", encoding="utf-8")
    keep = {p.path for p in plans} | ({warning_path} if source.skipped else set())
    removed = [path for path in existing if path not in keep]
    for path in removed:
        logger.info("removing stale %s", path)
        path.unlink()
    return ConversionResult(
        plans,
        num_partitions,
        dict(source.class_map),
        dict(source.skipped),
        warning_path if source.skipped else None,
        removed,
        boxes_outside(source.partitions),
    )


def pending_marker(prefix):
    """The hidden file listing the outputs of a conversion to ``prefix`` while they are renamed
    (``common.fileio.atomic_paths``)."""
    prefix = Path(prefix)
    return prefix.with_name(f".{prefix.name}.pending.json")


def _clean_up_killed_run(prefix):
    """Remove what a conversion to ``prefix`` killed with ``kill -9`` left: its temp files and,
    if it was killed while renaming its outputs, the incomplete set of shards."""
    for temp in part.stale_temp_files(prefix):
        temp.unlink(missing_ok=True)
    removed = discard_interrupted(pending_marker(prefix))
    if removed:
        logger.warning(
            "%s: removed %d file(s) of an earlier run that was interrupted while renaming its "
            "outputs (e.g. %s)",
            prefix,
            len(removed),
            removed[0].name,
        )


def convert_kitti(
    root_directory_path, output_prefix, num_shards=0, sample_modifier=None, force=False, **kwargs
):
    """Read a KITTI folder (``tao_qat.data.sources.read_kitti_source`` kwargs) and write it.

    Returns:
        ConversionResult.
    """
    source = read_kitti_source(root_directory_path, **kwargs)
    num_partitions = kwargs.get("num_partitions", 2)
    counts = [num_shards] * len(source.partitions)
    return write_partitions(output_prefix, source, num_partitions, counts, sample_modifier, force)


def convert_coco(
    root_directory_path,
    output_prefix,
    img_dir_names,
    annotation_files,
    num_shards=(0,),
    sample_modifier=None,
    force=False,
    check_images=True,
):
    """Read COCO jsons (one partition each) and write them; ``num_shards`` holds one value for
    all partitions or one per partition.

    Returns:
        ConversionResult.
    """
    num_partitions = len(annotation_files)
    counts = list(num_shards) or [0]
    if len(counts) == 1:
        counts = counts * num_partitions
    elif len(counts) != num_partitions:
        raise SpecError(
            f"coco_config.num_shards: give 1 value or {num_partitions} (one per partition), "
            f"got {len(counts)}"
        )
    source = read_coco_source(root_directory_path, img_dir_names, annotation_files, check_images)
    return write_partitions(output_prefix, source, num_partitions, counts, sample_modifier, force)


def _sample_modifier(config, validation_fold, num_folds):
    if validation_fold is not None and not 0 <= validation_fold < max(num_folds, 1):
        raise UsageError(
            f"-f/--validation_fold: {validation_fold} is not a partition "
            f"(0..{max(num_folds, 1) - 1})"
        )
    if not config.HasField("sample_modifier_config"):
        return None
    modifier = SampleModifier.from_spec(config.sample_modifier_config, validation_fold, num_folds)
    return modifier if modifier.is_active else None


def convert_from_spec(
    config, output_prefix, spec_dir=".", validation_fold=None, force=False, check_images=True
):
    """Run the conversion a ``DatasetExportConfig`` message describes.

    Relative paths in the spec (``root_directory_path``) are resolved against ``spec_dir``;
    the other paths are relative to the root, as in TAO.
    """
    which = config.WhichOneof("convert_config_type")
    if which == "kitti_config":
        k = config.kitti_config
        for name in ("point_clouds_dir", "calibrations_dir"):
            if getattr(k, name):
                raise SpecError(f"kitti_config.{name}: not supported (DetectNet_v2 ignores it)")
        if not k.root_directory_path:
            raise SpecError("kitti_config.root_directory_path: must be set")
        modifier = _sample_modifier(config, validation_fold, k.num_partitions)
        return convert_kitti(
            Path(resolve_spec_path(k.root_directory_path, spec_dir)),
            output_prefix,
            num_shards=k.num_shards,
            sample_modifier=modifier,
            force=force,
            image_dir_name=k.image_dir_name,
            label_dir_name=k.label_dir_name,
            image_extension=k.image_extension,
            partition_mode=k.partition_mode,
            num_partitions=k.num_partitions,
            val_split=k.val_split,
            kitti_sequence_to_frames_file=k.kitti_sequence_to_frames_file,
            check_images=check_images,
        )
    if which == "coco_config":
        c = config.coco_config
        if not c.root_directory_path:
            raise SpecError("coco_config.root_directory_path: must be set")
        if c.num_partitions != len(c.annotation_files):
            raise SpecError(
                f"coco_config.num_partitions: {c.num_partitions} but "
                f"{len(c.annotation_files)} annotation_files"
            )
        modifier = _sample_modifier(config, validation_fold, c.num_partitions)
        return convert_coco(
            Path(resolve_spec_path(c.root_directory_path, spec_dir)),
            output_prefix,
            list(c.img_dir_names),
            list(c.annotation_files),
            list(c.num_shards),
            sample_modifier=modifier,
            force=force,
            check_images=check_images,
        )
    raise SpecError("dataset_convert spec: set kitti_config or coco_config")


def load_dataset_export_spec(spec_path):
    """Parse a DatasetExportConfig text spec (via ``tao_qat.spec.loader``)."""
    from tao_qat.spec.loader import load_dataset_export_spec as load

    return load(spec_path)


def _write_status(results_dir, status):
    path = Path(results_dir) / "status.json"
    atomic_write_text(path, json.dumps(status, indent=2) + "\n")
    return path


def run_dataset_convert(
    spec_path,
    output_prefix,
    validation_fold=None,
    results_dir=None,
    force=False,
    check_images=True,
):
    """``qat dataset_convert``: load the spec, convert, optionally write ``status.json``.

    Args:
        spec_path: DatasetExportConfig text spec.
        output_prefix: prefix of the TFRecord files (TAO's ``-o/--output_filename``).
        validation_fold: fold the sample modifier leaves unchanged (TAO's ``-f``).
        results_dir: if given, ``<results_dir>/status.json`` records the outcome (rewritten on
            every run).
        force: overwrite existing outputs.
        check_images: fully decode every image (else read only headers).

    Returns:
        ConversionResult.
    """
    try:
        config = load_dataset_export_spec(spec_path)
        result = convert_from_spec(
            config, output_prefix, spec_dir_of(spec_path), validation_fold, force, check_images
        )
    except QatError as exc:
        if results_dir:
            _write_status(results_dir, {"status": "FAILURE", "message": str(exc)})
        raise
    if results_dir:
        _write_status(
            results_dir,
            {
                "status": "SUCCESS",
                "message": "TFRecords generation complete.",
                "outputs": [str(p) for p in result.paths],
                "num_records": {str(k): v for k, v in result.partition_records().items()},
                "num_objects": {str(k): dict(v) for k, v in result.partition_objects().items()},
                "class_map": result.class_map,
                "skipped_objects": len(result.skipped),
                "objects_outside_image": len(result.outside),
                "warning_file": str(result.warning_path) if result.warning_path else None,
            },
        )
    return result
