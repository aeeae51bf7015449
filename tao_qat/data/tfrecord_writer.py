"""Frames -> tf.train.Example records in TAO's DetectNet_v2 layout, written atomically (§10).

Feature names come from ``tao_qat.data.features``. Every object list feature is present even
when a frame has no objects (empty lists), as TAO writes them. Images are not embedded. Records
are serialized deterministically (feature map sorted by name): the same frames give the same
bytes in every run.
"""

from tao_qat.common.fileio import atomic_path
from tao_qat.common.tensorflow_setup import tf
from tao_qat.data import features as F


def _bytes(*values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _floats(*values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def _ints(*values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def frame_to_example(frame):
    """Build the tf.train.Example of one ``tao_qat.data.kitti.Frame``."""
    objects = frame.objects
    feature = {
        F.FRAME_ID: _bytes(frame.frame_id.encode("utf-8")),
        F.FRAME_HEIGHT: _ints(int(frame.height)),
        F.FRAME_WIDTH: _ints(int(frame.width)),
        F.OBJECT_CLASS: _bytes(*(obj.class_name.encode("utf-8") for obj in objects)),
        F.TRUNCATION: _floats(*(obj.truncation for obj in objects)),
        F.OCCLUSION: _ints(*(int(obj.occlusion) for obj in objects)),
        F.OBSERVATION_ANGLE: _floats(*(obj.alpha for obj in objects)),
    }
    for index, name in enumerate((F.X1, F.Y1, F.X2, F.Y2)):
        feature[name] = _floats(*(obj.box[index] for obj in objects))
    for index, name in enumerate(F.WORLD_BBOX):
        feature[name] = _floats(*(obj.world_bbox[index] for obj in objects))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def write_records_to(path, frames):
    """Write ``frames`` (list of Frame) to the TFRecord file ``path`` as is (not atomically:
    ``path`` is a temp name the caller renames). Returns the record count."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for frame in frames:
            writer.write(frame_to_example(frame).SerializeToString(deterministic=True))
    return len(frames)


def write_records(path, frames):
    """Write ``frames`` (list of Frame) to the TFRecord file ``path`` atomically.

    The file appears under its final name only once complete. Returns the record count.
    """
    with atomic_path(path, suffix=".tmp") as tmp:
        return write_records_to(tmp, frames)
