"""TAO's sample modifier: filtering, duplication and the training-sample cap."""

from collections import Counter

import pytest
from convert_helpers import read_records, write_kitti_spec

from tao_qat.common.errors import SpecError, UsageError
from tao_qat.data import features as F
from tao_qat.data.convert import run_dataset_convert
from tao_qat.data.kitti import Frame, KittiObject
from tao_qat.data.sample_modifier import SampleModifier

MAPPING = {"car": "car", "van": "car", "pedestrian": "person", "cyclist": "cyclist"}


def frame(name, *classes):
    return Frame(name, 10, 10, [KittiObject(c, (0, 0, 5, 5)) for c in classes])


def modifier(**kwargs):
    args = dict(
        filter_samples_containing_only=["car"],
        dominant_target_classes=["car"],
        minimum_target_class_imbalance={"cyclist": 0.5},
        num_duplicates=2,
        source_to_target_class_mapping=MAPPING,
        validation_fold=0,
        num_folds=2,
    )
    args.update(kwargs)
    return SampleModifier(**args)


def test_filter_only_one_class():
    m = modifier()
    only_cars = frame("a", "car", "van")  # both map to "car"
    assert m.modify(only_cars, 1) == []
    assert m.modify(only_cars, 0) == [only_cars]  # validation fold untouched
    unmapped = frame("f", "tram")  # no mapped class: kept, not duplicated
    assert m.modify(unmapped, 1) == [unmapped]


@pytest.mark.parametrize(
    ("classes", "copies"),
    [
        (("car", "car", "pedestrian"), 1),  # person 1 > car 2 * 1.0? no
        (("car", "pedestrian", "pedestrian"), 3),  # 2 > 1 * 1.0: + 2 duplicates
        (("car", "car", "cyclist"), 1),  # 1 > 2 * 0.5? no
        (("car", "car", "cyclist", "cyclist", "cyclist"), 3),  # 3 > 2 * 0.5
        # TAO compares with every dominant class, present or not: 1 > 0 * 1.0 -> duplicate.
        (("pedestrian",), 3),
    ],
)
def test_duplication_rule(classes, copies):
    m = modifier(filter_samples_containing_only=[])
    f = frame("x", *classes)
    assert m.modify(f, 1) == [f] * copies


def test_cap_per_training_fold():
    # 5 // (3 folds - 1 validation fold) = 2 samples per training fold.
    m = modifier(filter_samples_containing_only=[], max_training_samples=5, num_folds=3)
    b, c = frame("b", "car"), frame("c", "car", "pedestrian", "pedestrian")
    assert m.modify(b, 1) == [b]
    assert m.modify(c, 1) == [c]  # 3 copies, only 1 fits
    assert m.modify(b, 1) == []
    assert m.modify(b, 2) == [b]  # fold 2 has its own budget
    assert m.modify(b, 0) == [b]  # validation fold: never capped


def test_unknown_dominant_class_is_a_spec_error():
    with pytest.raises(SpecError, match=r"dominant_target_classes: \['truck'\] not among"):
        modifier(dominant_target_classes=["truck"])


def test_cap_without_training_fold():
    with pytest.raises(UsageError, match="no training fold left"):
        modifier(max_training_samples=4, num_folds=1)


SPEC_TAIL = """
sample_modifier_config {
  dominant_target_classes: "car"
  num_duplicates: 1
  source_to_target_class_mapping { key: "car" value: "car" }
  source_to_target_class_mapping { key: "person" value: "person" }
}
"""


def test_duplication_through_the_spec(tmp_path, synthetic_kitti):
    root, truth = synthetic_kitti
    spec = write_kitti_spec(tmp_path / "spec.txt", "data", val_split=30)
    spec.write_text(spec.read_text() + SPEC_TAIL)
    result = run_dataset_convert(spec, tmp_path / "o" / "m", validation_fold=0)
    counts = [Counter(r[F.FRAME_ID] for r in read_records([p])) for p in result.paths]
    for stem, objects in truth.items():
        names = Counter(n for n, _ in objects)
        fold = 0 if stem < "000003" else 1
        # Training frames with more persons than cars are written twice; validation once.
        expected = 2 if fold == 1 and names["person"] > names["car"] else 1
        assert counts[fold][f"image_2/{stem}"] == expected, stem
    assert sum(counts[1].values()) > 7  # the synthetic set does have such frames


def test_validation_fold_out_of_range(tmp_path, synthetic_kitti):
    spec = write_kitti_spec(tmp_path / "spec.txt", "data", val_split=30)
    with pytest.raises(UsageError, match=r"-f/--validation_fold: 2 is not a partition \(0..1\)"):
        run_dataset_convert(spec, tmp_path / "o", validation_fold=2)
