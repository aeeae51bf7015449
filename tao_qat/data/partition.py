"""TAO's partitioning, shuffling, sharding and TFRecord file naming (reference §10).

Frames are split into partitions (folds) and each partition into shards exactly as TAO's
``dataset_convert`` does, so the same spec on the same files yields the same records in the
same files. Randomness is one ``random.Random(42)`` stream (TAO seeds the global ``random``
module with 42 and shuffles each partition in order). TF-free.
"""

import json
import random
import re
from pathlib import Path

from tao_qat.common.errors import DataError, SpecError

TAO_SEED = 42


def list_image_stems(image_dir, extension):
    """Sorted file names in ``image_dir`` ending with ``extension``, without the extension.

    Mirrors TAO's random-mode listing: ``sorted(os.listdir(dir))`` filtered by
    ``name.endswith(extension)`` (case-sensitive), extension stripped.
    """
    names = sorted(p.name for p in Path(image_dir).iterdir() if p.is_file())
    return [name[: -len(extension)] for name in names if name.endswith(extension)]


def random_partitions(stems, val_split, num_partitions, rng):
    """Split sorted frame stems into partitions as TAO's ``random`` mode does.

    Args:
        stems: frame stems in sorted order.
        val_split: percent of frames for validation partition 0, 0 <= val_split < 100.
        num_partitions: 2 (TAO). Extension: 0 or 1 put every frame in a single partition
            (val_split must then be 0).
        rng: random.Random seeded with 42; each partition is shuffled once here.

    Returns:
        list of partitions (lists of stems): ``[val, train]`` for 2 partitions, the first
        ``int(val_split / 100 * N)`` sorted stems being the validation frames.
    """
    if num_partitions in (0, 1):
        if val_split != 0:
            raise SpecError(
                f"kitti_config.val_split: must be 0 when num_partitions is {num_partitions} "
                f"(got {val_split:g}); use num_partitions 2 for a train/validation split"
            )
        partitions = [list(stems)]
    elif num_partitions == 2:
        if not 0 <= val_split < 100:
            raise SpecError(f"kitti_config.val_split: must be in [0, 100), got {val_split:g}")
        num_val = int(val_split / 100.0 * len(stems))
        partitions = [list(stems[:num_val]), list(stems[num_val:])]
    else:
        raise SpecError(
            f"kitti_config.num_partitions: random partition mode needs 2 (or 0/1 for no "
            f"split), got {num_partitions}"
        )
    shuffle_partitions(partitions, rng)
    return partitions


def read_sequence_file(path):
    """Read a ``kitti_sequence_to_frames_file``: JSON ``{sequence_name: [frame stem, ...]}``."""
    try:
        with open(path, encoding="utf-8") as handle:
            mapping = json.load(handle)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    if not isinstance(mapping, dict):
        raise DataError(f"{path}: expected a JSON object {{sequence: [frame ids]}}")
    for name, frames in mapping.items():
        if not isinstance(frames, list) or not all(isinstance(f, str) for f in frames):
            raise DataError(f"{path}: sequence {name!r} must map to a list of frame id strings")
    return mapping


def sequence_partitions(sequence_to_frames, num_partitions):
    """Split frames by sequence as TAO's ``sequence`` mode does (no shuffling here).

    With more than one partition, sequences sorted by (-number of frames, name) are dealt
    round-robin into the partitions and the partition list is then reversed; otherwise all
    frames form one partition in file order.
    """
    if num_partitions <= 1:
        return [[frame for frames in sequence_to_frames.values() for frame in frames]]
    partitions = [[] for _ in range(num_partitions)]
    ordered = sorted(sequence_to_frames.items(), key=lambda item: (-len(item[1]), item[0]))
    for index, (_, frames) in enumerate(ordered):
        partitions[index % num_partitions].extend(frames)
    return partitions[::-1]


def shuffle_partitions(partitions, rng):
    """Shuffle each partition in place, in order, with ``rng`` (random.Random)."""
    for partition in partitions:
        rng.shuffle(partition)


def shard(items, num_shards):
    """Split a partition into contiguous shards as TAO does.

    Each shard gets ``len(items) // num_shards`` items and the last one the remainder
    (num_shards 0 means 1). With more shards than items, all but the last shard are empty.
    """
    num_shards = max(num_shards, 1)
    size = len(items) // num_shards
    return [
        items[i * size : (i + 1) * size if i + 1 < num_shards else len(items)]
        for i in range(num_shards)
    ]


def shard_path(prefix, partition, num_partitions, shard_index, num_shards):
    """TAO's output name ``<prefix>-fold-%03d-of-%03d-shard-%05d-of-%05d``.

    The fold part is omitted when num_partitions is 0, the shard part when num_shards is 0.
    """
    name = str(prefix)
    if num_partitions != 0:
        name += f"-fold-{partition:03d}-of-{num_partitions:03d}"
    if num_shards != 0:
        name += f"-shard-{shard_index:05d}-of-{num_shards:05d}"
    return Path(name)


_SHARD_SUFFIX = re.compile(r"^(-fold-\d{3}-of-\d{3})?(-shard-\d{5}-of-\d{5})?$")


def existing_outputs(prefix):
    """Files already present that a conversion to ``prefix`` would write or that look like its
    shards from an earlier run (any fold/shard counts), plus ``<prefix>_warning.json``."""
    prefix = Path(prefix)
    folder = prefix.parent if str(prefix.parent) else Path(".")
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        if not path.name.startswith(prefix.name):
            continue
        rest = path.name[len(prefix.name) :]
        if rest == "_warning.json" or _SHARD_SUFFIX.match(rest):
            found.append(path)
    return sorted(found)


def stale_temp_files(prefix):
    """Temp files left by a conversion to ``prefix`` killed while writing: hidden
    ``.<output name>.<8 random characters>.tmp`` files (``common.fileio.atomic_path``)."""
    prefix = Path(prefix)
    folder = prefix.parent if str(prefix.parent) else Path(".")
    if not folder.is_dir():
        return []
    pattern = re.compile(
        r"^\." + re.escape(prefix.name) + r"(_warning\.json|-fold-\d{3}-of-\d{3}(-shard-\d{5}-of-"
        r"\d{5})?|-shard-\d{5}-of-\d{5})?\.[a-z0-9_]{8}\.tmp(\.json)?$"
    )
    return sorted(p for p in folder.iterdir() if pattern.match(p.name) and p.is_file())


def new_rng():
    """The random stream TAO's converters use: Python ``random`` seeded with 42."""
    return random.Random(TAO_SEED)
