"""The synthetic KITTI generator: determinism and exact boxes."""

import numpy as np
import pytest
from PIL import Image

from tao_qat.common.errors import OutputExistsError
from tao_qat.data.kitti import read_kitti_labels
from tao_qat.data.synthetic import PALETTE, write_synthetic_kitti


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    kwargs = dict(num_images=4, image_size=(48, 32), box_size=(6, 12))
    a = write_synthetic_kitti(tmp_path / "a", seed=5, **kwargs)
    b = write_synthetic_kitti(tmp_path / "b", seed=5, **kwargs)
    c = write_synthetic_kitti(tmp_path / "c", seed=6, **kwargs)
    assert a != c
    assert a == b
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert len(_files(tmp_path / "a")) == 8  # 4 images + 4 labels
    assert _files(tmp_path / "a") != _files(tmp_path / "c")


def test_boxes_are_exact_and_labels_match(tmp_path):
    classes = ("car", "person", "bike")
    truth = write_synthetic_kitti(
        tmp_path, 12, image_size=(80, 60), classes=classes, box_size=(8, 20), seed=1
    )
    assert sum(len(v) for v in truth.values()) >= 12
    for stem, objects in truth.items():
        labels = read_kitti_labels(tmp_path / "label_2" / f"{stem}.txt")
        assert [(o.class_name, o.box) for o in labels] == objects
        pixels = np.asarray(Image.open(tmp_path / "image_2" / f"{stem}.png")).astype(int)
        for name, (x1, y1, x2, y2) in objects:
            colour = PALETTE[classes.index(name)]
            # Look in the box grown by 1 px (objects are >= 2 px apart): the shape's pixels
            # span exactly x1 <= x < x2 and y1 <= y < y2.
            gx, gy = max(x1 - 1, 0), max(y1 - 1, 0)
            mask = np.all(pixels[gy : y2 + 1, gx : x2 + 1] == colour, axis=-1)
            ys, xs = np.nonzero(mask)
            assert (xs.min() + gx, ys.min() + gy, xs.max() + 1 + gx, ys.max() + 1 + gy) == (
                x1,
                y1,
                x2,
                y2,
            )
            assert 0 <= x1 < x2 <= 80 and 0 <= y1 < y2 <= 60


def test_refuses_to_overwrite(tmp_path):
    write_synthetic_kitti(tmp_path, 1, image_size=(32, 32), box_size=(4, 8))
    with pytest.raises(OutputExistsError):
        write_synthetic_kitti(tmp_path, 1, image_size=(32, 32), box_size=(4, 8))
    write_synthetic_kitti(tmp_path, 1, image_size=(32, 32), box_size=(4, 8), force=True)


def test_jpeg_output(tmp_path):
    write_synthetic_kitti(tmp_path, 2, image_size=(32, 24), box_size=(4, 8), extension=".jpg")
    assert sorted(p.name for p in (tmp_path / "image_2").iterdir()) == ["000000.jpg", "000001.jpg"]
    with Image.open(tmp_path / "image_2" / "000000.jpg") as image:
        assert image.format == "JPEG" and image.size == (32, 24)
