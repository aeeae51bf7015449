"""Read a KITTI folder or COCO jsons into partitions of Frames for dataset_convert (§10).

Partitioning and shuffling follow TAO (``tao_qat.data.partition``). Every label is parsed and
every image opened (and by default fully decoded) here, before anything is written, so a bad
file fails the conversion with one line naming it; boxes extending outside their image are
counted for the report (``boxes_outside``). TF-free.
"""

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from tao_qat.common.errors import DataError, SpecError
from tao_qat.data import coco as coco_io
from tao_qat.data import partition as part
from tao_qat.data.kitti import Frame, read_kitti_labels

logger = logging.getLogger(__name__)

PARTITION_MODES = ("random", "sequence")


@dataclass
class SourceData:
    """A dataset read into partitions.

    Attributes:
        partitions: list (one per partition / fold) of lists of Frame, in write order.
        class_map: {class as written in the source: class in the TFRecords (lower-cased)}.
        skipped: TAO's warning dict of objects skipped for inverted boxes: KITTI keys
            ``"<label file>_<object index>"``, COCO keys the annotation id; values
            [int(x1), int(y1), int(x2), int(y2)].
    """

    partitions: list
    class_map: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BoxOutside:
    """An object whose box (x1, y1, x2, y2, image pixels) is not inside its width x height
    image; ``entirely`` when it does not overlap the image at all."""

    frame_id: str
    box: tuple
    width: int
    height: int

    @property
    def entirely(self):
        x1, y1, x2, y2 = self.box
        return x2 <= 0 or y2 <= 0 or x1 >= self.width or y1 >= self.height


def boxes_outside(partitions):
    """BoxOutside of every object of ``partitions`` (lists of Frame) not inside its image."""
    found = []
    for frames in partitions:
        for frame in frames:
            for obj in frame.objects:
                x1, y1, x2, y2 = obj.box
                if x1 < 0 or y1 < 0 or x2 > frame.width or y2 > frame.height:
                    found.append(
                        BoxOutside(frame.frame_id, tuple(obj.box), frame.width, frame.height)
                    )
    return found


def format_outside(outside):
    """One report line: how many boxes extend outside their image, and the first of them."""
    entirely = sum(item.entirely for item in outside)
    first = outside[0]
    box = ", ".join(f"{v:g}" for v in first.box)
    return (
        f"{len(outside)} object(s) have boxes extending outside their image ({entirely} "
        f"entirely outside), e.g. frame {first.frame_id!r}: ({box}) in a {first.width}x"
        f"{first.height} image; kept as TAO does: training clips boxes to the image and drops "
        "those left without area"
    )


def read_image_size(path, decode=True):
    """(width, height) of an image file; with ``decode`` the pixels are decoded too.

    Raises DataError if the file is missing, not an image, or (with ``decode``) truncated.
    """
    try:
        with Image.open(path) as image:
            size = image.size
            if decode:
                image.load()
    except FileNotFoundError:
        raise DataError(f"{path}: image not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: unreadable image ({exc})") from None
    return size


def _image_sizes(paths, decode):
    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: read_image_size(p, decode), paths))


def normalize_extension(extension):
    """'' -> '.png' (TAO's default); 'jpg' -> '.jpg'."""
    extension = extension or ".png"
    return extension if extension.startswith(".") else "." + extension


def frame_id(image_dir_name, stem):
    """TAO's ``frame/id``: ``<image_dir_name>/<stem>`` (just the stem if the dir name is empty)."""
    return f"{image_dir_name.rstrip('/')}/{stem}" if image_dir_name else stem


def kitti_partitions(
    root, image_dir_name, extension, partition_mode, num_partitions, val_split, sequence_file
):
    """Frame stems per partition, shuffled exactly as TAO does (see tao_qat.data.partition)."""
    rng = part.new_rng()
    if partition_mode == "random":
        image_dir = Path(root) / image_dir_name
        stems = part.list_image_stems(image_dir, extension)
        if not stems:
            others = sorted({p.suffix for p in image_dir.iterdir() if p.is_file()} - {""})
            hint = f" (found other extensions: {', '.join(others)})" if others else ""
            raise DataError(f"{image_dir}: no images with extension {extension!r}{hint}")
        partitions = part.random_partitions(stems, val_split, num_partitions, rng)
    elif partition_mode == "sequence":
        if not sequence_file:
            raise SpecError(
                "kitti_config.kitti_sequence_to_frames_file: required by partition_mode "
                '"sequence" (path relative to root_directory_path)'
            )
        mapping = part.read_sequence_file(Path(root) / sequence_file)
        partitions = part.sequence_partitions(mapping, num_partitions)
        if not any(partitions):
            raise DataError(f"{Path(root) / sequence_file}: lists no frames")
    else:
        raise SpecError(
            f"kitti_config.partition_mode: must be one of {', '.join(PARTITION_MODES)}, "
            f"got {partition_mode!r}"
        )
    part.shuffle_partitions(partitions, rng)  # TAO shuffles again after partitioning
    return partitions


def load_kitti_frames(root, image_dir_name, label_dir_name, extension, stems, check_images=True):
    """Read labels and image sizes of ``stems``; returns ({stem: Frame}, class_map, skipped).

    Objects with inverted boxes are left out of the frames and listed in ``skipped``.

    Raises:
        DataError: a missing label file or image, an unreadable image, a malformed label.
    """
    root = Path(root)
    stems = list(dict.fromkeys(stems))
    label_paths = [root / label_dir_name / f"{stem}.txt" for stem in stems]
    image_paths = [root / image_dir_name / f"{stem}{extension}" for stem in stems]
    for label_path, image_path in zip(label_paths, image_paths, strict=True):
        if not label_path.is_file():
            raise DataError(f"{label_path}: label file missing for image {image_path}")
        if not image_path.is_file():
            raise DataError(f"{image_path}: image missing for label file {label_path}")
    sizes = _image_sizes(image_paths, check_images)
    frames, class_map, skipped = {}, {}, {}
    for stem, label_path, (width, height) in zip(stems, label_paths, sizes, strict=True):
        kept = []
        for index, obj in enumerate(read_kitti_labels(label_path)):
            if obj.is_degenerate():
                skipped[f"{label_path}_{index}"] = obj.int_box()
                logger.debug("%s:%d: skipped object with box %s", label_path, obj.line, obj.box)
            else:
                kept.append(obj)
                class_map[obj.source_class] = obj.class_name
        frames[stem] = Frame(frame_id(image_dir_name, stem), width, height, kept)
    return frames, class_map, skipped


def _warn_orphan_labels(root, image_dir_name, label_dir_name, extension):
    label_dir = Path(root) / label_dir_name
    images = set(part.list_image_stems(Path(root) / image_dir_name, extension))
    orphans = sorted(p.name for p in label_dir.glob("*.txt") if p.stem not in images)
    if orphans:
        logger.warning(
            "%s: %d label file(s) without a %s image are ignored (e.g. %s)",
            label_dir,
            len(orphans),
            extension,
            orphans[0],
        )
    return orphans


def read_kitti_source(
    root_directory_path,
    image_dir_name="image_2",
    label_dir_name="label_2",
    image_extension=".png",
    partition_mode="random",
    num_partitions=2,
    val_split=0.0,
    kitti_sequence_to_frames_file="",
    check_images=True,
):
    """Read a KITTI folder (``<root>/<image_dir_name>``, ``<root>/<label_dir_name>``).

    Args mirror ``kitti_config`` (paths already resolved); ``image_extension`` includes the
    dot ("" means ".png"); ``val_split`` is a percentage; ``check_images`` decodes every
    image to catch truncated files (otherwise only headers are read).

    Returns:
        SourceData.
    """
    root = Path(root_directory_path)
    extension = normalize_extension(image_extension)
    for name, what in ((image_dir_name, "image_dir_name"), (label_dir_name, "label_dir_name")):
        if not (root / name).is_dir():
            raise DataError(f"{root / name}: folder not found (kitti_config.{what})")
    partitions = kitti_partitions(
        root,
        image_dir_name,
        extension,
        partition_mode,
        num_partitions,
        val_split,
        kitti_sequence_to_frames_file,
    )
    if partition_mode == "random":
        _warn_orphan_labels(root, image_dir_name, label_dir_name, extension)
    stems = [stem for partition in partitions for stem in partition]
    frames, class_map, skipped = load_kitti_frames(
        root, image_dir_name, label_dir_name, extension, stems, check_images
    )
    return SourceData([[frames[s] for s in p] for p in partitions], class_map, skipped)


def read_coco_source(root_directory_path, img_dir_names, annotation_files, check_images=True):
    """Read COCO detection jsons, one partition per (img_dir_name, annotation_file) pair.

    Frames keep the json order (TAO does not shuffle COCO); width/height are read from the
    image files (a json size that differs is logged as a warning).
    """
    root = Path(root_directory_path)
    if len(img_dir_names) != len(annotation_files) or not annotation_files:
        raise SpecError(
            "coco_config: need one img_dir_names entry per annotation_files entry and at least "
            f"one (got {len(img_dir_names)} and {len(annotation_files)})"
        )
    paths = [root / name for name in annotation_files]
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: COCO annotation file not found")
    partitions = [coco_io.read_coco_partition(path) for path in paths]
    coco_io.check_same_categories(partitions, paths)
    data = SourceData([])
    for partition, img_dir in zip(partitions, img_dir_names, strict=True):
        data.class_map.update(partition.class_map)
        data.skipped.update(partition.skipped)
        images = [root / img_dir / image.file_name for image in partition.images]
        sizes = _image_sizes(images, check_images)
        frames = []
        for image, path, (width, height) in zip(partition.images, images, sizes, strict=True):
            if (image.width, image.height) not in ((width, height), (0, 0)):
                logger.warning(
                    "%s: json says %dx%d, the file is %dx%d; using the file's size",
                    path,
                    image.width,
                    image.height,
                    width,
                    height,
                )
            stem = image.file_name.rsplit(".", 1)[0]
            frames.append(Frame(frame_id(img_dir, stem), width, height, image.objects))
        data.partitions.append(frames)
    return data
