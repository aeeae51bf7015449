"""KITTI -> TFRecords end to end on small synthetic and real sets (records read back with TF)."""

import json
import random
import shutil
from collections import Counter

import pytest
from convert_helpers import read_records, write_kitti_spec
from PIL import Image

from tao_qat.common.errors import DataError, OutputExistsError, SpecError, UsageError
from tao_qat.data import features as F
from tao_qat.data.convert import convert_kitti, run_dataset_convert
from tao_qat.data.kitti import read_kitti_labels

STEMS = [f"{i:06d}" for i in range(10)]


def _truth_counts(truth, stems):
    return Counter(name for stem in stems for name, _ in truth[stem])


def test_random_split_names_counts_and_features(tmp_path, synthetic_kitti):
    root, truth = synthetic_kitti
    spec = write_kitti_spec(tmp_path / "spec.txt", "data", val_split=30, num_shards=2)
    out = tmp_path / "out" / "syn"
    result = run_dataset_convert(spec, out)

    # 10 frames, val_split 30 -> 3 validation frames (fold 0), 7 training frames (fold 1);
    # 2 shards each: 3 // 2 = 1 then 2; 7 // 2 = 3 then 4.
    names = [p.name for p in result.paths]
    assert names == [
        "syn-fold-000-of-002-shard-00000-of-00002",
        "syn-fold-000-of-002-shard-00001-of-00002",
        "syn-fold-001-of-002-shard-00000-of-00002",
        "syn-fold-001-of-002-shard-00001-of-00002",
    ]
    assert sorted(p.name for p in out.parent.iterdir()) == names  # no temp files left behind
    assert [s.num_records for s in result.shards] == [1, 2, 3, 4]
    assert result.partition_records() == {0: 3, 1: 7}

    fold0 = read_records(result.paths[:2])
    fold1 = read_records(result.paths[2:])
    assert [len(read_records([p])) for p in result.paths] == [1, 2, 3, 4]
    # The validation fold holds the first int(0.3 * 10) = 3 sorted frames.
    assert sorted(r[F.FRAME_ID] for r in fold0) == [f"image_2/{s}" for s in STEMS[:3]]
    assert sorted(r[F.FRAME_ID] for r in fold1) == [f"image_2/{s}" for s in STEMS[3:]]
    assert result.partition_objects() == {
        0: _truth_counts(truth, STEMS[:3]),
        1: _truth_counts(truth, STEMS[3:]),
    }
    for record in fold0 + fold1:
        stem = record[F.FRAME_ID].split("/")[1]
        assert (record[F.FRAME_WIDTH], record[F.FRAME_HEIGHT]) == (64, 48)
        objects = truth[stem]
        assert record[F.OBJECT_CLASS] == [name for name, _ in objects]
        boxes = list(zip(record[F.X1], record[F.Y1], record[F.X2], record[F.Y2], strict=True))
        assert boxes == [box for _, box in objects]  # integer boxes survive float32 exactly
        assert list(record[F.TRUNCATION]) == [0.0] * len(objects)
        assert list(record[F.OCCLUSION]) == [0] * len(objects)
        for name in F.WORLD_BBOX:
            assert list(record[name]) == [0.0] * len(objects)


def test_record_order_is_taos_seeded_shuffle(tmp_path, synthetic_kitti):
    root, _ = synthetic_kitti
    result = convert_kitti(root, tmp_path / "x", val_split=30, num_partitions=2, num_shards=0)
    assert [p.name for p in result.paths] == ["x-fold-000-of-002", "x-fold-001-of-002"]
    random.seed(42)  # TAO: seed 42, shuffle each partition in _partition, again in convert()
    expected = [STEMS[:3], STEMS[3:]]
    for _ in range(2):
        for p in expected:
            random.shuffle(p)
    for path, stems in zip(result.paths, expected, strict=True):
        assert [r[F.FRAME_ID] for r in read_records([path])] == [f"image_2/{s}" for s in stems]


def test_inverted_boxes_skipped_and_reported(tmp_path, synthetic_kitti):
    root, truth = synthetic_kitti
    label = root / "label_2" / "000004.txt"
    good = label.read_text()
    bad_lines = [
        "Van 0.00 0 0.00 30.0 10.0 20.0 30.0 0 0 0 0 0 0 0",  # x1 > x2
        "Van 0.00 0 0.00 10.2 10.0 10.9 30.0 0 0 0 0 0 0 0",  # int(10.2) == int(10.9)
    ]
    label.write_text(bad_lines[0] + "\n" + good + bad_lines[1] + "\n")
    result = convert_kitti(root, tmp_path / "o" / "w", num_partitions=2, val_split=0)
    n = len(truth["000004"])
    expected = {f"{label}_0": [30, 10, 20, 30], f"{label}_{n + 1}": [10, 10, 10, 30]}
    assert result.skipped == expected
    assert result.warning_path == tmp_path / "o" / "w_warning.json"
    assert json.loads(result.warning_path.read_text()) == expected
    assert "van" not in result.class_map  # TAO maps only written objects
    record = next(r for r in read_records(result.paths) if r[F.FRAME_ID].endswith("000004"))
    assert record[F.OBJECT_CLASS] == [name for name, _ in truth["000004"]]
    assert "Skipped 2 object(s)" in result.format_report()


def test_val_split_zero_writes_only_fold_one(tmp_path, synthetic_kitti):
    root, _ = synthetic_kitti
    result = convert_kitti(root, tmp_path / "t", num_partitions=2, val_split=0, num_shards=1)
    assert [p.name for p in result.paths] == ["t-fold-001-of-002-shard-00000-of-00001"]
    assert result.partition_records() == {1: 10}


def test_refuses_to_overwrite_then_force_replaces_and_removes_stale(tmp_path, synthetic_kitti):
    root, _ = synthetic_kitti
    prefix = tmp_path / "o" / "p"
    first = convert_kitti(root, prefix, num_partitions=2, val_split=20, num_shards=3)
    before = {p: p.read_bytes() for p in first.paths}
    with pytest.raises(OutputExistsError, match="already exists .use --force"):
        convert_kitti(root, prefix, num_partitions=2, val_split=20, num_shards=3)
    assert {p: p.read_bytes() for p in first.paths} == before  # untouched
    # A different shard count would leave the old shards matched by a `p*` glob: refused too.
    with pytest.raises(OutputExistsError):
        convert_kitti(root, prefix, num_partitions=2, val_split=20, num_shards=2)
    second = convert_kitti(root, prefix, num_partitions=2, val_split=20, num_shards=2, force=True)
    assert sorted(second.removed) == sorted(first.paths)
    assert sorted(prefix.parent.iterdir()) == sorted(second.paths)


def test_bad_label_fails_before_anything_is_written(tmp_path, synthetic_kitti):
    root, _ = synthetic_kitti
    label = root / "label_2" / "000009.txt"
    label.write_text(label.read_text() + "car 0 0 0 1 2 3\n")
    lines = len(label.read_text().splitlines())
    with pytest.raises(DataError) as info:
        convert_kitti(root, tmp_path / "o" / "p", num_partitions=2, val_split=50, num_shards=2)
    assert str(info.value).startswith(f"{label}:{lines}: expected 15")
    assert not (tmp_path / "o").exists()


def test_missing_label_file_is_a_data_error(tmp_path, synthetic_kitti):
    root, _ = synthetic_kitti
    (root / "label_2" / "000002.txt").unlink()
    with pytest.raises(DataError, match=r"000002.txt: label file missing for image .*000002.png"):
        convert_kitti(root, tmp_path / "p", num_partitions=2, val_split=0)


def test_label_without_image_is_ignored_with_a_warning(tmp_path, synthetic_kitti, caplog):
    root, _ = synthetic_kitti
    shutil.copy(root / "label_2" / "000001.txt", root / "label_2" / "orphan.txt")
    result = convert_kitti(root, tmp_path / "p", num_partitions=2, val_split=0)
    assert result.partition_records() == {1: 10}
    assert "1 label file(s) without a .png image are ignored (e.g. orphan.txt)" in caplog.text


def test_truncated_image_is_a_data_error(tmp_path, synthetic_kitti):
    root, _ = synthetic_kitti
    image = root / "image_2" / "000005.png"
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"000005.png: unreadable image \(.*truncated"):
        convert_kitti(root, tmp_path / "p", num_partitions=2, val_split=0)
    # Reading headers only (--skip_image_check) does not notice: documented trade-off.
    result = convert_kitti(root, tmp_path / "q", num_partitions=2, val_split=0, check_images=False)
    assert result.partition_records() == {1: 10}


def test_not_an_image_is_a_data_error(tmp_path, synthetic_kitti):
    root, _ = synthetic_kitti
    (root / "image_2" / "000003.png").write_text("not a png")
    with pytest.raises(DataError, match=r"000003.png: unreadable image \(cannot identify"):
        convert_kitti(root, tmp_path / "p", num_partitions=2, val_split=0, check_images=False)


def test_no_images_with_the_extension(tmp_path, synthetic_kitti):
    root, _ = synthetic_kitti
    with pytest.raises(DataError, match=r"no images with extension '.jpg' \(found other .*\.png"):
        convert_kitti(root, tmp_path / "p", image_extension=".jpg", val_split=0)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match=r"nowhere/image_2: folder not found .kitti_config.image"):
        convert_kitti(tmp_path / "nowhere", tmp_path / "p", val_split=0)


def test_output_prefix_must_not_be_a_folder(tmp_path, synthetic_kitti):
    root, _ = synthetic_kitti
    with pytest.raises(UsageError, match="must be a file name prefix, not a folder"):
        convert_kitti(root, tmp_path, val_split=0)


def test_sequence_mode(tmp_path, synthetic_kitti):
    root, truth = synthetic_kitti
    seq = {"s1": STEMS[:5], "s2": STEMS[5:8], "s3": STEMS[8:]}
    (root / "seq.json").write_text(json.dumps(seq))
    spec = write_kitti_spec(
        tmp_path / "spec.txt",
        "data",
        partition_mode="sequence",
        kitti_sequence_to_frames_file="seq.json",
        num_partitions=2,
    )
    result = run_dataset_convert(spec, tmp_path / "o" / "s")
    # s1 (5) -> p0, s2 (3) -> p1, s3 (2) -> p0; reversed: fold 0 = s2, fold 1 = s1 + s3.
    fold0, fold1 = (read_records([p]) for p in result.paths)
    assert sorted(r[F.FRAME_ID][-6:] for r in fold0) == STEMS[5:8]
    assert sorted(r[F.FRAME_ID][-6:] for r in fold1) == STEMS[:5] + STEMS[8:]


def test_sequence_mode_missing_image(tmp_path, synthetic_kitti):
    root, _ = synthetic_kitti
    (root / "seq.json").write_text(json.dumps({"s": ["000001", "000777"]}))
    (root / "label_2" / "000777.txt").write_text("")
    with pytest.raises(DataError, match=r"000777.png: image missing for label file"):
        convert_kitti(
            root,
            tmp_path / "p",
            partition_mode="sequence",
            num_partitions=0,
            kitti_sequence_to_frames_file="seq.json",
        )


def test_sequence_single_partition_names_without_fold(tmp_path, synthetic_kitti):
    root, _ = synthetic_kitti
    (root / "seq.json").write_text(json.dumps({"s": STEMS}))
    result = convert_kitti(
        root,
        tmp_path / "p",
        partition_mode="sequence",
        num_partitions=0,
        num_shards=2,
        kitti_sequence_to_frames_file="seq.json",
    )
    assert [p.name for p in result.paths] == ["p-shard-00000-of-00002", "p-shard-00001-of-00002"]


def test_bad_partition_mode(tmp_path, synthetic_kitti):
    root, _ = synthetic_kitti
    with pytest.raises(SpecError, match="partition_mode: must be one of random, sequence"):
        convert_kitti(root, tmp_path / "p", partition_mode="")


def test_spec_paths_relative_to_spec_folder_and_status_json(tmp_path, synthetic_kitti, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = write_kitti_spec(tmp_path / "spec.txt", "data", num_shards=1)
    result = run_dataset_convert(spec, "rel/out", results_dir="res")
    # -o is relative to the working directory; the spec's root to the spec's folder.
    assert [str(p) for p in result.paths] == ["rel/out-fold-001-of-002-shard-00000-of-00001"]
    assert (elsewhere / result.paths[0]).is_file()
    status = json.loads((elsewhere / "res" / "status.json").read_text())
    assert status["status"] == "SUCCESS"
    assert status["num_records"] == {"1": 10}


def test_status_json_on_failure(tmp_path):
    spec = write_kitti_spec(tmp_path / "spec.txt", "missing")
    with pytest.raises(DataError):
        run_dataset_convert(spec, tmp_path / "o", results_dir=tmp_path / "res")
    status = json.loads((tmp_path / "res" / "status.json").read_text())
    assert status["status"] == "FAILURE" and "folder not found" in status["message"]


def test_unsupported_point_clouds(tmp_path, synthetic_kitti):
    spec = write_kitti_spec(tmp_path / "spec.txt", "data", point_clouds_dir="velodyne")
    with pytest.raises(SpecError, match="kitti_config.point_clouds_dir: not supported"):
        run_dataset_convert(spec, tmp_path / "o")


def test_real_photos(tmp_path, test_data):
    root = test_data / "people_vehicles"
    result = convert_kitti(root, tmp_path / "pv", image_extension=".jpg", val_split=0)
    records = read_records(result.paths)
    sizes = {r[F.FRAME_ID]: (r[F.FRAME_WIDTH], r[F.FRAME_HEIGHT]) for r in records}
    assert sizes == {
        "image_2/voc_2012_sample": (500, 375),
        "image_2/terrain2": (1024, 682),
        "image_2/2011_000003": (500, 338),
        "image_2/00000100": (1000, 563),
    }
    expected = Counter(
        obj.class_name
        for path in (root / "label_2").glob("*.txt")
        for obj in read_kitti_labels(path)
    )
    # 7 + 3 person, 8 chair, 3 diningtable, 1 + 1 bottle, 5 + 1 car, 2 truck
    assert expected == {
        "person": 10,
        "chair": 8,
        "diningtable": 3,
        "bottle": 2,
        "car": 6,
        "truck": 2,
    }
    assert result.partition_objects() == {1: expected}
    record = next(r for r in records if r[F.FRAME_ID] == "image_2/00000100")
    assert record[F.Y1][0] == pytest.approx(184.26)  # stored as float32
    for name in ("person", "chair", "truck"):
        assert result.class_map[name] == name
    with Image.open(root / "image_2" / "terrain2.jpg") as image:
        assert image.size == (1024, 682)
