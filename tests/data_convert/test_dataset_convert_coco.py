"""COCO json -> TFRecords on a tiny hand-written dataset."""

import json

import numpy as np
import pytest
from convert_helpers import read_records
from PIL import Image

from tao_qat.common.errors import DataError, SpecError
from tao_qat.data import features as F
from tao_qat.data.convert import run_dataset_convert

CATEGORIES = [{"id": 1, "name": "Traffic Light"}, {"id": 3, "name": "Car"}]


def _image(path, size):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).save(path)


@pytest.fixture
def coco_root(tmp_path):
    root = tmp_path / "coco"
    _image(root / "val" / "a.jpg", (40, 30))
    _image(root / "train" / "b.png", (50, 20))
    _image(root / "train" / "c.d.png", (16, 16))
    val = {
        "images": [{"id": 7, "file_name": "a.jpg", "width": 40, "height": 30}],
        "annotations": [
            {"id": 100, "image_id": 7, "category_id": 1, "bbox": [10, 5, 20.5, 10]},
            {"id": 101, "image_id": 7, "category_id": 3, "bbox": [5, 5, 0.5, 10]},  # degenerate
        ],
        "categories": CATEGORIES,
    }
    train = {
        "images": [
            {"id": 2, "file_name": "c.d.png", "width": 16, "height": 16},
            {"id": 1, "file_name": "b.png", "width": 50, "height": 20},
        ],
        "annotations": [
            {"id": 200, "image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4]},
            {"id": 201, "image_id": 1, "category_id": 3, "bbox": [10, 2, 30, 15]},
        ],
        "categories": CATEGORIES,
    }
    (root / "annotations").mkdir()
    (root / "annotations" / "val.json").write_text(json.dumps(val))
    (root / "annotations" / "train.json").write_text(json.dumps(train))
    return root


def _spec(tmp_path, root, num_shards="[1, 2]", extra=""):
    spec = tmp_path / "coco_spec.txt"
    spec.write_text(
        "coco_config {\n"
        f'  root_directory_path: "{root}"\n'
        '  img_dir_names: ["val", "train"]\n'
        '  annotation_files: ["annotations/val.json", "annotations/train.json"]\n'
        "  num_partitions: 2\n"
        f"  num_shards: {num_shards}\n"
        f"{extra}}}\n"
    )
    return spec


def test_coco_conversion(tmp_path, coco_root):
    result = run_dataset_convert(_spec(tmp_path, coco_root), tmp_path / "o" / "coco")
    assert [p.name for p in result.paths] == [
        "coco-fold-000-of-002-shard-00000-of-00001",
        "coco-fold-001-of-002-shard-00000-of-00002",
        "coco-fold-001-of-002-shard-00001-of-00002",
    ]
    val = read_records(result.paths[:1])
    train = read_records(result.paths[1:])
    assert len(val) == 1
    record = val[0]
    assert record[F.FRAME_ID] == "val/a"
    assert (record[F.FRAME_WIDTH], record[F.FRAME_HEIGHT]) == (40, 30)
    # [x, y, w, h] = [10, 5, 20.5, 10] -> (10, 5, 30.5, 15); spaces removed, lower-cased.
    assert record[F.OBJECT_CLASS] == ["trafficlight"]
    assert [record[k][0] for k in (F.X1, F.Y1, F.X2, F.Y2)] == [10, 5, 30.5, 15]
    # json order kept (no shuffle): 2 images, 2 // 2 = 1 per shard; "c.d.png" -> "c.d".
    assert [r[F.FRAME_ID] for r in train] == ["train/c.d", "train/b"]
    assert train[0][F.OBJECT_CLASS] == []
    assert train[1][F.OBJECT_CLASS] == ["car", "car"]
    assert list(train[1][F.X2]) == [4, 40]
    assert result.class_map == {"TrafficLight": "trafficlight", "Car": "car"}
    # annotation 101: x2 = 5.5 -> int 5 >= int(x1) 5 -> skipped, keyed by annotation id
    assert json.loads(result.warning_path.read_text()) == {"101": [5, 5, 5, 15]}
    assert result.partition_objects() == {0: {"trafficlight": 1}, 1: {"car": 2}}


def test_coco_single_shard_value_applies_to_all(tmp_path, coco_root):
    result = run_dataset_convert(_spec(tmp_path, coco_root, "0"), tmp_path / "o" / "c")
    assert [p.name for p in result.paths] == ["c-fold-000-of-002", "c-fold-001-of-002"]


def test_coco_missing_image(tmp_path, coco_root):
    (coco_root / "train" / "b.png").unlink()
    with pytest.raises(DataError, match=r"train/b.png: image not found"):
        run_dataset_convert(_spec(tmp_path, coco_root), tmp_path / "o" / "c")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("categories"), '"categories" is missing or empty'),
        (lambda d: d.update(annotations=[]), '"annotations" is missing or empty'),
        (lambda d: d["annotations"][0].pop("bbox"), r"annotations\[0\] lacks 'bbox'"),
        (
            lambda d: d["annotations"][0].update(category_id=9),
            r"annotations\[0\] \(id 200\): unknown category_id 9",
        ),
        (
            lambda d: d["annotations"][1].update(bbox=[1, 2, "x", 4]),
            r"annotations\[1\] \(id 201\): bbox has a non-number",
        ),
        (
            lambda d: d.update(categories=[*CATEGORIES, {"id": 5, "name": "Bus"}]),
            r"category ids \[1, 3, 5\] differ from those of .*val.json \(\[1, 3\]\)",
        ),
    ],
)
def test_coco_json_errors(tmp_path, coco_root, edit, message):
    path = coco_root / "annotations" / "train.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=message):
        run_dataset_convert(_spec(tmp_path, coco_root), tmp_path / "o" / "c")


def test_coco_invalid_json_names_line(tmp_path, coco_root):
    (coco_root / "annotations" / "val.json").write_text('{\n  "images": [,\n')
    with pytest.raises(DataError, match=r"val.json:2:\d+: invalid JSON"):
        run_dataset_convert(_spec(tmp_path, coco_root), tmp_path / "o" / "c")


def test_coco_num_shards_count_mismatch(tmp_path, coco_root):
    with pytest.raises(SpecError, match="num_shards"):
        run_dataset_convert(_spec(tmp_path, coco_root, "[1, 2, 3]"), tmp_path / "o" / "c")
