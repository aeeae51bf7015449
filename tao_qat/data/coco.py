"""COCO detection json -> KITTI-style frames for dataset_convert (reference §10, ``coco_config``).

Mirrors TAO's COCO converter without pycocotools: images in the json's order (one partition
per annotation file, no shuffling), boxes ``[x, y, w, h]`` -> (x1, y1, x2, y2) = (x, y, x + w,
y + h) in pixels, category names with spaces removed and lower-cased, truncation / occlusion /
3D fields zero. Boxes with int(x1) >= int(x2) or int(y1) >= int(y2) are skipped and reported
under their annotation id. TF-free.
"""

import json
import logging
import math
from dataclasses import dataclass, field

from tao_qat.common.errors import DataError
from tao_qat.data.kitti import KittiObject

logger = logging.getLogger(__name__)


@dataclass
class CocoImage:
    """One image entry with its objects.

    Attributes:
        image_id: the json ``id``.
        file_name: path relative to the partition's image folder, with extension.
        width, height: size from the json (the converter re-reads it from the file).
        objects: list of KittiObject, degenerate boxes removed.
    """

    image_id: object
    file_name: str
    width: int
    height: int
    objects: list = field(default_factory=list)


@dataclass
class CocoPartition:
    """One annotation file: images in json order, category names, skipped boxes."""

    images: list
    categories: dict  # category id -> lower-cased name (spaces removed)
    class_map: dict  # name as in the json -> name in the TFRecords
    skipped: dict  # annotation id -> [int(x1), int(y1), int(x2), int(y2)]


def _load_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None


def _require(item, keys, path, what, index):
    missing = [k for k in keys if k not in item]
    if missing:
        raise DataError(f"{path}: {what}[{index}] lacks {', '.join(map(repr, missing))}")


def _bbox(ann, path, index):
    bbox = ann["bbox"]
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise DataError(f"{path}: annotations[{index}] (id {ann['id']}): bbox must be [x, y, w, h]")
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise DataError(
            f"{path}: annotations[{index}] (id {ann['id']}): bbox has a non-number: {bbox}"
        ) from None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise DataError(f"{path}: annotations[{index}] (id {ann['id']}): bbox not finite: {bbox}")
    return (x, y, x + w, y + h)


def read_coco_partition(path):
    """Read one COCO detection json.

    Raises:
        DataError: invalid JSON, a missing or empty ``images`` / ``annotations`` /
            ``categories`` list (TAO refuses these too), an item lacking a required key, an
            annotation with an unknown ``category_id`` or a malformed bbox.
    """
    data = _load_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a COCO json object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list) or not data[key]:
            raise DataError(f'{path}: "{key}" is missing or empty')
    raw_names, categories = {}, {}
    for index, cat in enumerate(data["categories"]):
        _require(cat, ("id", "name"), path, "categories", index)
        raw_names[cat["id"]] = str(cat["name"])
        categories[cat["id"]] = str(cat["name"]).replace(" ", "").lower()
    images = {}
    for index, img in enumerate(data["images"]):
        _require(img, ("id", "file_name"), path, "images", index)
        images[img["id"]] = CocoImage(
            img["id"], str(img["file_name"]), int(img.get("width", 0)), int(img.get("height", 0))
        )
    class_map, skipped, orphans = {}, {}, 0
    for index, ann in enumerate(data["annotations"]):
        _require(ann, ("id", "image_id", "category_id", "bbox"), path, "annotations", index)
        if ann["category_id"] not in categories:
            raise DataError(
                f"{path}: annotations[{index}] (id {ann['id']}): unknown category_id "
                f"{ann['category_id']!r}"
            )
        box = _bbox(ann, path, index)
        image = images.get(ann["image_id"])
        if image is None:
            orphans += 1
            continue
        obj = KittiObject(class_name=categories[ann["category_id"]], box=box)
        if obj.is_degenerate():
            skipped[ann["id"]] = obj.int_box()
            continue
        class_map[raw_names[ann["category_id"]].replace(" ", "")] = obj.class_name
        image.objects.append(obj)
    if orphans:
        logger.warning('%s: %d annotations refer to no image in "images"; ignored', path, orphans)
    return CocoPartition(list(images.values()), categories, class_map, skipped)


def check_same_categories(partitions, paths):
    """TAO requires every annotation file to define the same category ids."""
    first = sorted(partitions[0].categories)
    for partition, path in zip(partitions[1:], paths[1:], strict=True):
        if sorted(partition.categories) != first:
            raise DataError(
                f"{path}: category ids {sorted(partition.categories)} differ from those of "
                f"{paths[0]} ({first}); every partition must use the same categories"
            )
