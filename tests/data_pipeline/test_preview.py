"""The preview grid (tao_qat.data.preview): layout, box outlines, command line."""

import numpy as np
from PIL import Image
from pipeline_testing import SPEC_TEMPLATE

from tao_qat.data.preview import COLOURS, write_preview


def write_spec(root, augmentation=""):
    text = SPEC_TEMPLATE.format(
        tfrecords="tfrecords/*",
        images="images",
        validation="validation_fold: 0",
        width=64,
        height=64,
        preprocessing="",
        augmentation=augmentation,
    )
    path = root / "spec.txt"
    path.write_text(text)
    return path


def test_validation_grid_outlines_boxes_where_they_are(dataset_root):
    spec = write_spec(dataset_root)
    out = write_preview(spec, dataset_root / "grid.png", num_images=2, split="validation")
    grid = np.asarray(Image.open(out))
    # Two 64 x 64 tiles side by side with a 4 px gap: 132 x 64.
    assert grid.shape == (64, 132, 3)
    # The car (5, 10, 25, 20), class 1, is outlined in COLOURS[1] on its left and top edges,
    # in both tiles (the second starts at x = 68); the inside stays white.
    for left in (0, 68):
        assert tuple(grid[15, left + 5]) == COLOURS[1]
        assert tuple(grid[10, left + 15]) == COLOURS[1]
        assert tuple(grid[15, left + 6]) == (255, 255, 255)
    # The person (30, 5, 40, 40), class 0, left edge.
    assert tuple(grid[30, 30]) == COLOURS[0]


def test_command_line_writes_png_and_refuses_to_overwrite(dataset_root, run_qat):
    spec = write_spec(dataset_root, "spatial_augmentation { hflip_probability: 0.5 }")
    out = dataset_root / "train.png"
    code, stdout, _ = run_qat("preview", "-e", spec, "-o", out, "-n", "4")
    assert code == 0 and stdout.strip() == str(out)
    # 4 training images -> a 2 x 2 grid.
    assert Image.open(out).size == (132, 132)
    code, _, stderr = run_qat("preview", "-e", spec, "-o", out)
    assert code == 2 and "already exists" in stderr
    assert run_qat("preview", "-e", spec, "-o", out, "--force", "--seed", "3")[0] == 0


def test_command_line_reports_data_errors_in_one_line(dataset_root, run_qat):
    spec = write_spec(dataset_root)
    spec.write_text(spec.read_text().replace("tfrecords/*", "missing/*"))
    code, _, err = run_qat("preview", "-e", spec, "-o", dataset_root / "x.png")
    assert code == 1
    err = err.strip()
    assert err.count("\n") == 0
    assert "dataset_config.data_sources[0].tfrecords_path" in err and "missing/*" in err
