"""The vendored tree tiles (examples/trees): conversion with the example specs, tiling rules."""

import importlib.util
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from convert_helpers import read_records
from PIL import Image

from tao_qat.data import features as F
from tao_qat.data.convert import run_dataset_convert
from tao_qat.data.kitti import KittiObject, read_kitti_labels

TREES = Path(__file__).resolve().parents[2] / "examples" / "trees"
SOURCE = Path("/work/shared/data/neon_trees")  # only on the machine the tiles were made on


def _make_tiles():
    spec = importlib.util.spec_from_file_location("make_tiles", TREES / "make_tiles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _label_counts(split):
    files = sorted((TREES / "data" / split / "label_2").glob("*.txt"))
    return len(files), sum(len(read_kitti_labels(p)) for p in files)


@pytest.mark.parametrize(("split", "tiles", "boxes"), [("train", 84, 1586), ("val", 10, 191)])
def test_example_specs_convert_the_vendored_tiles(tmp_path, split, tiles, boxes):
    assert _label_counts(split) == (tiles, boxes)
    spec = TREES / "specs" / f"trees_tfrecords_{split}.txt"
    result = run_dataset_convert(spec, tmp_path / split / f"trees_{split}")
    records = read_records(result.paths)
    assert len(records) == tiles
    assert result.partition_records() == {1: tiles}  # val_split 0: everything in fold 1
    assert result.partition_objects() == {1: Counter(tree=boxes)}
    assert not result.skipped
    for record in records:
        assert record[F.FRAME_ID].startswith("image_2/YELL_")
        assert (record[F.FRAME_WIDTH], record[F.FRAME_HEIGHT]) == (384, 384)
        for x1, y1, x2, y2 in zip(*(record[k] for k in (F.X1, F.Y1, F.X2, F.Y2)), strict=True):
            assert 0 <= x1 < x2 <= 384 and 0 <= y1 < y2 <= 384


def _tile_corners(split):
    """{source: [(x0, y0), ...]} parsed from tile names YELL_<e>_<n>_x<X>_y<Y>."""
    corners = {}
    for path in (TREES / "data" / split / "image_2").glob("*.jpg"):
        source, x, y = re.fullmatch(r"(YELL_\d+_\d+)_x(\d+)_y(\d+)", path.stem).groups()
        corners.setdefault(source, []).append((int(x), int(y)))
    return corners


def test_validation_band_never_shares_a_pixel_with_training():
    # Source heights 1704 and 1035: the held-out band is the last 384 rows of each image.
    band_top = {"YELL_528000_4978000": 1704 - 384, "YELL_541000_4977000": 1035 - 384}
    train, val = _tile_corners("train"), _tile_corners("val")
    assert set(train) == set(val) == set(band_top)  # both forests in both splits
    for source, top in band_top.items():
        assert all(y0 + 384 <= top for _, y0 in train[source])
        assert {y0 for _, y0 in val[source]} == {top}
    assert sorted(x0 for x0, _ in val["YELL_541000_4977000"]) == [0, 384, 768, 1152]


def test_training_boxes_never_reach_into_the_band():
    tiles = _make_tiles()
    # Image 1035 rows high: train rows [0, 651), band [651, 1035); a box crossing row 651
    # keeps its upper part in training (if >= 40%) and its lower part in validation.
    assert tiles.split_rows(1035) == ((0, 651), (651, 1035))
    assert tiles.tile_origins("val", 1249, 1035) == [(0, 651), (384, 651), (768, 651), (1152, 651)]
    crossing = [KittiObject("tree", (10, 631, 30, 671))]  # 20 px above row 651, 20 below
    assert tiles.clip_boxes(crossing, 0, 267, region=(0, 651)) == [("tree", (10, 364, 30, 384))]
    assert tiles.clip_boxes(crossing, 0, 651, region=(651, 1035)) == [("tree", (10, 0, 30, 20))]


def test_readme_states_the_counts():
    text = (TREES / "README.md").read_text()
    for split in ("train", "val"):
        tiles, boxes = _label_counts(split)
        assert re.search(rf"\|\s*{split}\s*\|\s*{tiles}\s*\|\s*{boxes}\s*\|", text), split


def test_tile_positions():
    tiles = _make_tiles()
    # 2299 px wide: 0..1728 step 192 (1728 + 384 = 2112 < 2299), then 2299 - 384 = 1915.
    assert tiles.overlapping_positions(2299) == [*range(0, 1729, 192), 1915]
    assert tiles.overlapping_positions(1704) == [*range(0, 1153, 192), 1320]
    assert tiles.overlapping_positions(768) == [0, 192, 384]  # exact fit: nothing added
    assert tiles.padded_positions(1249) == [0, 384, 768, 1152]
    assert tiles.padded_positions(768) == [0, 384]


def test_clip_boxes_keeps_at_least_40_percent():
    tiles = _make_tiles()
    objects = [
        KittiObject("tree", (370, 10, 400, 30)),  # 14 of 30 px wide kept: 46.7% -> kept
        KittiObject("tree", (374, 10, 404, 30)),  # 10 of 30: 33% -> dropped
        KittiObject("tree", (500, 10, 520, 30)),  # outside
        KittiObject("tree", (100, 380, 120, 400)),  # 4 of 20 px high: 20% -> dropped
    ]
    assert tiles.clip_boxes(objects, 0, 0) == [("tree", (370, 10, 384, 30))]
    assert tiles.clip_boxes(objects, 192, 0) == [
        ("tree", (178, 10, 208, 30)),
        ("tree", (182, 10, 212, 30)),
        ("tree", (308, 10, 328, 30)),
    ]


@pytest.mark.skipif(not SOURCE.is_dir(), reason=f"tile source {SOURCE} not on this machine")
def test_make_tiles_reproduces_the_vendored_tiles(tmp_path):
    _make_tiles().main(["--source", str(SOURCE), "--out", str(tmp_path)])
    for split in ("train", "val"):
        made = sorted((tmp_path / split / "label_2").glob("*.txt"))
        assert [p.name for p in made] == sorted(
            p.name for p in (TREES / "data" / split / "label_2").glob("*.txt")
        )
        for path in made:
            assert path.read_text() == (TREES / "data" / split / "label_2" / path.name).read_text()
        for path in sorted((tmp_path / split / "image_2").glob("*.jpg"))[:5]:
            new = np.asarray(Image.open(path), np.float32)
            old = np.asarray(Image.open(TREES / "data" / split / "image_2" / path.name), np.float32)
            assert new.shape == old.shape == (384, 384, 3)
            assert np.abs(new - old).mean() < 1.0  # same pixels up to JPEG codec differences
