"""TAO partitioning, shuffling, sharding and file naming as pure functions."""

import random

import pytest

from tao_qat.common.errors import DataError, SpecError
from tao_qat.data import partition as part


def test_shard_sizes_last_takes_remainder():
    items = list(range(10))
    # 10 // 3 = 3 per shard, the last shard gets 10 - 6 = 4.
    assert part.shard(items, 3) == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    assert part.shard(items, 0) == [items]  # 0 means one shard
    assert part.shard(items, 1) == [items]


def test_more_shards_than_items_leaves_leading_shards_empty():
    # 3 // 5 = 0 per shard: TAO writes four empty shards and puts everything in the last.
    assert part.shard(["a", "b", "c"], 5) == [[], [], [], [], ["a", "b", "c"]]


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((0, 2, 1, 10), "out/x-fold-000-of-002-shard-00001-of-00010"),
        ((1, 2, 0, 0), "out/x-fold-001-of-002"),
        ((0, 0, 3, 4), "out/x-shard-00003-of-00004"),
        ((0, 0, 0, 0), "out/x"),
    ],
)
def test_tao_file_names(args, name):
    assert str(part.shard_path("out/x", *args)) == name


def test_random_partitions_split_sorted_list_then_shuffle_like_tao():
    stems = [f"{i:06d}" for i in range(10)]
    rng = part.new_rng()
    partitions = part.random_partitions(stems, 30, 2, rng)
    part.shuffle_partitions(partitions, rng)  # dataset_convert shuffles a second time
    # int(30 / 100 * 10) = 3 validation frames: the first 3 sorted stems.
    assert sorted(partitions[0]) == stems[:3]
    assert sorted(partitions[1]) == stems[3:]
    # TAO: random.seed(42); shuffle(p0); shuffle(p1) in _partition; again in convert().
    random.seed(42)
    expected = [stems[:3], stems[3:]]
    for _ in range(2):
        for p in expected:
            random.shuffle(p)
    assert partitions == expected


def test_random_val_split_rounds_down():
    stems = [str(i) for i in range(7481)]  # KITTI training set size
    partitions = part.random_partitions(stems, 14, 2, part.new_rng())
    assert len(partitions[0]) == 1047  # int(0.14 * 7481) = int(1047.34)


def test_random_val_split_zero_leaves_partition_zero_empty():
    partitions = part.random_partitions(["a", "b"], 0, 2, part.new_rng())
    assert partitions[0] == [] and sorted(partitions[1]) == ["a", "b"]


@pytest.mark.parametrize("num_partitions", [0, 1])
def test_random_single_partition_extension(num_partitions):
    partitions = part.random_partitions(["a", "b", "c"], 0, num_partitions, part.new_rng())
    assert len(partitions) == 1 and sorted(partitions[0]) == ["a", "b", "c"]
    with pytest.raises(SpecError, match="val_split: must be 0 when num_partitions is"):
        part.random_partitions(["a"], 10, num_partitions, part.new_rng())


@pytest.mark.parametrize(
    ("val_split", "num_partitions", "message"),
    [
        (100, 2, r"val_split: must be in \[0, 100\), got 100"),
        (-1, 2, "val_split: must be in"),
        (10, 3, "num_partitions: random partition mode needs 2"),
    ],
)
def test_random_partition_spec_errors(val_split, num_partitions, message):
    with pytest.raises(SpecError, match=message):
        part.random_partitions(["a"], val_split, num_partitions, part.new_rng())


def test_sequence_partitions_round_robin_then_reversed():
    mapping = {"d": ["d1"], "b": ["b1", "b2"], "a": ["a1", "a2", "a3"], "c": ["c1", "c2"]}
    # sorted by (-len, name): a(3), b(2), c(2), d(1); dealt to p0: a, c; p1: b, d; reversed.
    assert part.sequence_partitions(mapping, 2) == [
        ["b1", "b2", "d1"],
        ["a1", "a2", "a3", "c1", "c2"],
    ]
    # one partition (or 0): every frame in file order
    assert part.sequence_partitions(mapping, 1) == [
        ["d1", "b1", "b2", "a1", "a2", "a3", "c1", "c2"]
    ]


def test_sequence_file_errors(tmp_path):
    bad = tmp_path / "seq.json"
    bad.write_text('{"a": ["x", }')
    with pytest.raises(DataError, match=r"seq.json:1:\d+: invalid JSON"):
        part.read_sequence_file(bad)
    bad.write_text('{"a": "x"}')
    with pytest.raises(DataError, match="sequence 'a' must map to a list of frame id strings"):
        part.read_sequence_file(bad)


def test_list_image_stems_sorted_case_sensitive(tmp_path):
    for name in ["b.png", "a.png", "c.PNG", "d.jpg", "e.png.txt"]:
        (tmp_path / name).write_bytes(b"")
    assert part.list_image_stems(tmp_path, ".png") == ["a", "b"]


def test_existing_outputs_finds_shards_of_any_count(tmp_path):
    names = [
        "x-fold-000-of-002-shard-00000-of-00010",
        "x-shard-00001-of-00003",
        "x",
        "x_warning.json",
        "x_other-fold-000-of-002",  # another prefix
        "xy-fold-000-of-002",  # another prefix
        "x-fold-000-of-002.bak",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    found = [p.name for p in part.existing_outputs(tmp_path / "x")]
    assert found == sorted(names[:4])
