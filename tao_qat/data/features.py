"""tf.train.Example feature names of TAO's DetectNet_v2 TFRecords (reference §10).

Records hold image paths (``frame/id`` without extension, relative to the data source's
``image_directory_path``) and boxes; images stay on disk.
"""

FRAME_ID = "frame/id"  # bytes: "<image_dir_name>/<frame_stem>"
FRAME_HEIGHT = "frame/height"  # int64, pixels
FRAME_WIDTH = "frame/width"  # int64, pixels

OBJECT_CLASS = "target/object_class"  # bytes, lower-cased source class name
TRUNCATION = "target/truncation"  # float
OCCLUSION = "target/occlusion"  # int64
OBSERVATION_ANGLE = "target/observation_angle"  # float
X1 = "target/coordinates_x1"  # float, pixels
Y1 = "target/coordinates_y1"
X2 = "target/coordinates_x2"
Y2 = "target/coordinates_y2"
WORLD_BBOX = (
    "target/world_bbox_h",
    "target/world_bbox_w",
    "target/world_bbox_l",
    "target/world_bbox_x",
    "target/world_bbox_y",
    "target/world_bbox_z",
    "target/world_bbox_rot_y",
)  # floats (KITTI 3D fields; zero for 2D-only data)
