"""build_dataset: batch layout, preprocessing, augmentation, determinism, errors, hooks."""

import numpy as np
import pytest
from pipeline_testing import (
    IMAGE_H,
    SPATIAL_AUGMENTATION,
    STRONG_AUGMENTATION,
    draw_frame,
    make_experiment,
    write_dataset,
)

from tao_qat.common.errors import DataError, SpecError
from tao_qat.common.tensorflow_setup import tf
from tao_qat.data.decode import reraise_data_errors
from tao_qat.data.pipeline import build_dataset, count_examples, steps_per_epoch

CAR, PERSON = [5, 10, 25, 20], [30, 5, 40, 40]  # person id 0, car id 1


def first_batch(dataset):
    return {k: v.numpy() for k, v in next(iter(dataset)).items()}


def region_bounds(channel, threshold=0.5):
    ys, xs = np.nonzero(channel > threshold)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def test_train_batch_layout_and_value_ranges(dataset_root):
    experiment = make_experiment(augmentation=STRONG_AUGMENTATION)
    batch = first_batch(build_dataset(experiment, "train", spec_dir=dataset_root))
    assert batch["images"].shape == (2, 64, 64, 3) and batch["images"].dtype == np.float32
    assert batch["boxes"].shape == (2, 2, 4) and batch["boxes"].dtype == np.float32
    assert batch["classes"].shape == (2, 2) and batch["classes"].dtype == np.int32
    assert batch["num_boxes"].dtype == np.int32 and batch["frame_id"].dtype == object
    assert batch["images"].min() >= 0.0 and batch["images"].max() <= 1.0
    assert batch["source_weight"].tolist() == [1.0, 1.0]
    for i in range(2):
        n = batch["num_boxes"][i]
        assert set(batch["classes"][i, :n]) <= {0, 1} and (batch["classes"][i, n:] == -1).all()
        boxes = batch["boxes"][i, :n]
        assert (boxes >= 0).all() and (boxes <= 64).all()
        assert (boxes[:, 2:] - boxes[:, :2] >= 1).all()
        assert (batch["boxes"][i, n:] == 0).all()
    # The training fold files hold frames 002-005 (fold 0 is validation).
    assert {f.decode()[-3:] for f in batch["frame_id"]} <= {"002", "003", "004", "005"}


def test_validation_is_padded_not_resized_and_not_augmented(dataset_root):
    # 64 x 48 images on a 64 x 64 canvas: rows 48-63 are zero padding, pixels copied exactly.
    experiment = make_experiment(augmentation=STRONG_AUGMENTATION)
    batch = first_batch(build_dataset(experiment, "validation", spec_dir=dataset_root))
    expected = draw_frame(dataset_root / "check.png") / np.float32(255)
    np.testing.assert_array_equal(batch["images"][0, :IMAGE_H], expected)
    assert batch["images"][0, IMAGE_H:].max() == 0.0
    np.testing.assert_allclose(batch["boxes"][0], [CAR, PERSON])
    assert batch["classes"][0].tolist() == [1, 0]
    assert [f.decode() for f in batch["frame_id"]] == ["image_2/000", "image_2/001"]


@pytest.mark.parametrize(
    "preprocessing, size, car, person",
    [
        # Crop (16, 8, 48, 40) onto 32 x 32: subtract (16, 8); the car (5, 10, 25, 20) ->
        # (-11, 2, 9, 12) clipped to (0, 2, 9, 12); the person (30, 5, 40, 40) -> (14, 0, 24, 32)
        # after clipping y (-3 -> 0, 32 stays 32).
        (
            "crop_left: 16 crop_top: 8 crop_right: 48 crop_bottom: 40",
            32,
            [0, 2, 9, 12],
            [14, 0, 24, 32],
        ),
        # Auto-resize 64 x 48 -> 32 x 32: x * 0.5, y * 2/3: car (2.5, 6.667, 12.5, 13.333),
        # person (15, 3.333, 20, 26.667).
        ("enable_auto_resize: true", 32, [2.5, 20 / 3, 12.5, 40 / 3], [15, 10 / 3, 20, 80 / 3]),
        # Scale 0.5 then the default crop at the origin: car (2.5, 5, 12.5, 10),
        # person (15, 2.5, 20, 20).
        ("scale_width: 0.5 scale_height: 0.5", 32, [2.5, 5, 12.5, 10], [15, 2.5, 20, 20]),
    ],
)
def test_preprocessing_moves_boxes_with_pixels(dataset_root, preprocessing, size, car, person):
    experiment = make_experiment(width=size, height=size, preprocessing=preprocessing)
    batch = first_batch(build_dataset(experiment, "validation", spec_dir=dataset_root))
    np.testing.assert_allclose(batch["boxes"][0], [car, person], atol=1e-4)
    # The white pixels of the car sit inside its box (within the 1 px bilinear edge).
    image = batch["images"][0, :, :, 0]
    x1, y1, x2, y2 = (int(round(v)) for v in car)
    assert image[y1 + 1 : y2 - 1, x1 + 1 : x2 - 1].min() > 0.99


def test_train_augmented_boxes_follow_their_pixels(tmp_path):
    # One white object per frame: after random flips, shifts, zoom and rotation the box must
    # bound the bright region within 1 px.
    write_dataset(tmp_path, num_frames=4, folds=(), objects=(("car", (14.0, 10.0, 40.0, 34.0)),))
    experiment = make_experiment(validation="", augmentation=SPATIAL_AUGMENTATION)
    dataset = build_dataset(experiment, "train", spec_dir=tmp_path, batch_size=4)
    checked = 0
    for batch in dataset.take(3):
        for image, box, n in zip(
            batch["images"].numpy(), batch["boxes"].numpy(), batch["num_boxes"].numpy(), strict=True
        ):
            if n == 1:
                np.testing.assert_allclose(box[0], region_bounds(image[..., 0]), atol=1.0)
                checked += 1
    assert checked >= 10


def test_same_seed_same_batches_other_seed_differs(dataset_root):
    experiment = make_experiment(augmentation=STRONG_AUGMENTATION)

    def batches(seed):
        dataset = build_dataset(experiment, "train", spec_dir=dataset_root, seed=seed)
        return [{k: v.numpy() for k, v in b.items()} for b in dataset.take(3)]

    a, b, c = batches(7), batches(7), batches(8)
    for x, y in zip(a, b, strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert any(not np.array_equal(x["images"], z["images"]) for x, z in zip(a, c, strict=True))


@pytest.mark.parametrize("cache", [True, False])
def test_start_continues_the_stream_of_an_uninterrupted_run(dataset_root, cache):
    """A resumed run (start = examples already consumed) sees the same frames in the same
    order with the same augmentation as the uninterrupted stream, across reshuffled epochs."""
    experiment = make_experiment(augmentation=STRONG_AUGMENTATION)

    def examples(start, count):
        dataset = build_dataset(experiment, "train", spec_dir=dataset_root, batch_size=1,
                                cache=cache, start=start)
        return [{k: v.numpy() for k, v in b.items()} for b in dataset.take(count)]

    whole = examples(0, 14)
    resumed = examples(9, 5)  # more than one epoch of the dataset in, mid-epoch
    for x, y in zip(whole[9:], resumed, strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert not np.array_equal(whole[0]["images"], resumed[0]["images"])


def test_random_seed_of_the_spec_is_the_default(dataset_root):
    experiment = make_experiment(augmentation=STRONG_AUGMENTATION)
    default = first_batch(build_dataset(experiment, "train", spec_dir=dataset_root))
    explicit = first_batch(build_dataset(experiment, "train", spec_dir=dataset_root, seed=42))
    np.testing.assert_array_equal(default["images"], explicit["images"])


def test_epoch_sizes_and_partial_last_batch(dataset_root):
    experiment = make_experiment(validation="validation_fold: 1")
    assert count_examples(experiment, "validation", dataset_root) == 4
    assert steps_per_epoch(4, 3) == 2
    dataset = build_dataset(experiment, "validation", spec_dir=dataset_root, batch_size=3)
    assert [b["images"].shape[0] for b in dataset] == [3, 1]
    train = build_dataset(experiment, "train", spec_dir=dataset_root)
    assert train.cardinality().numpy() == tf.data.INFINITE_CARDINALITY


def test_uncached_pipeline_matches_cached(dataset_root):
    experiment = make_experiment(augmentation=STRONG_AUGMENTATION)
    cached = first_batch(build_dataset(experiment, "train", spec_dir=dataset_root, cache=True))
    plain = first_batch(build_dataset(experiment, "train", spec_dir=dataset_root, cache=False))
    for key in cached:
        np.testing.assert_array_equal(cached[key], plain[key])


@pytest.mark.parametrize("cache", [True, False])
def test_corrupt_image_error_names_the_file(dataset_root, cache):
    bad = dataset_root / "images" / "image_2" / "001.png"
    bad.write_bytes(bad.read_bytes()[:60])
    dataset = build_dataset(make_experiment(), "validation", spec_dir=dataset_root, cache=cache)
    with pytest.raises(DataError) as info, reraise_data_errors():
        list(dataset)
    assert str(info.value) == f"{bad}: cannot decode image (corrupt or not an image)"


def test_targets_fn_maps_every_batch(dataset_root):
    def targets_fn(batch):
        return batch["images"], tf.reduce_sum(batch["num_boxes"])

    dataset = build_dataset(
        make_experiment(), "validation", spec_dir=dataset_root, targets_fn=targets_fn
    )
    images, total = next(iter(dataset))
    assert images.shape == (2, 64, 64, 3) and int(total) == 4


def test_grey_input_and_max_boxes(dataset_root):
    experiment = make_experiment()
    experiment.augmentation_config.preprocessing.output_image_channel = 1
    batch = first_batch(build_dataset(experiment, "validation", spec_dir=dataset_root, max_boxes=1))
    assert batch["images"].shape == (2, 64, 64, 1)
    assert batch["images"][0, 15, 10, 0] == 1.0  # inside the white car box
    np.testing.assert_allclose(batch["boxes"][0], [CAR])  # only the first object kept
    assert batch["num_boxes"].tolist() == [1, 1]


@pytest.mark.parametrize(
    "preprocessing, augmentation, message",
    [
        ("output_image_min: 32", "", "output_image_min/max"),
        ("", "spatial_augmentation { zoom_min: 1.2 zoom_max: 1.1 }", "zoom_min"),
    ],
)
def test_unsupported_or_invalid_augmentation_is_a_spec_error(
    dataset_root, preprocessing, augmentation, message
):
    experiment = make_experiment(preprocessing=preprocessing, augmentation=augmentation)
    with pytest.raises(SpecError, match=message):
        build_dataset(experiment, "train", spec_dir=dataset_root)
