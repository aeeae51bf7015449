"""Helpers shared by the dataset_convert tests (spec writing, reading records back)."""

import textwrap


def write_kitti_spec(path, root, **fields):
    """Write a DatasetExportConfig text spec with a kitti_config built from ``fields``."""
    values = {
        "root_directory_path": str(root),
        "image_dir_name": "image_2",
        "label_dir_name": "label_2",
        "image_extension": ".png",
        "partition_mode": "random",
        "num_partitions": 2,
        "val_split": 0,
        "num_shards": 0,
    }
    values.update(fields)
    body = "\n".join(
        f"  {k}: {v!r}".replace("'", '"') if isinstance(v, str) else f"  {k}: {v}"
        for k, v in values.items()
    )
    path.write_text(f"kitti_config {{\n{body}\n}}\n")
    return path


def read_records(paths):
    """Parse TFRecord files back into a list of dicts of python values (TAO feature names)."""
    from tao_qat.common.tensorflow_setup import tf
    from tao_qat.data import features as F

    spec = {
        F.FRAME_ID: tf.io.FixedLenFeature([], tf.string),
        F.FRAME_HEIGHT: tf.io.FixedLenFeature([], tf.int64),
        F.FRAME_WIDTH: tf.io.FixedLenFeature([], tf.int64),
        F.OBJECT_CLASS: tf.io.VarLenFeature(tf.string),
        F.TRUNCATION: tf.io.VarLenFeature(tf.float32),
        F.OCCLUSION: tf.io.VarLenFeature(tf.int64),
        F.OBSERVATION_ANGLE: tf.io.VarLenFeature(tf.float32),
        **{name: tf.io.VarLenFeature(tf.float32) for name in (F.X1, F.Y1, F.X2, F.Y2)},
        **{name: tf.io.VarLenFeature(tf.float32) for name in F.WORLD_BBOX},
    }
    records = []
    for serialized in tf.data.TFRecordDataset([str(p) for p in paths]):
        parsed = tf.io.parse_single_example(serialized, spec)
        record = {}
        for name, value in parsed.items():
            if isinstance(value, tf.sparse.SparseTensor):
                value = value.values
            value = value.numpy()
            if isinstance(value, bytes):
                value = value.decode()
            elif value.dtype == object:
                value = [v.decode() for v in value]
            elif value.ndim == 0:
                value = value.item()
            record[name] = value
        records.append(record)
    return records


def dedent(text):
    return textwrap.dedent(text).lstrip("\n")
