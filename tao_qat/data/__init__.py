"""Data: KITTI/COCO labels, TFRecord conversion, the tf.data input pipeline, synthetic data."""
