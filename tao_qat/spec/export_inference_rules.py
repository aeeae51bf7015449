"""Validation rules of ``DatasetExportConfig`` (TAO digest §10) and ``Inference`` (§9) specs.

Dataset export mirrors the asserts of TAO's ``build_converter`` / ``KITTIConverter``; inference
mirrors ``INFERENCE_VALUE_CHECK_DICT`` but accepts 0 where TAO's code substitutes a default
(see docs/specs.md).
"""

from tao_qat.spec.checker import index_path, join, key_path
from tao_qat.spec.experiment_rules import STRIDE, check_clustering

PARTITION_MODES = ("random", "sequence")
CONFIDENCE_MODELS = ("aggregate_cov", "mean_cov")


def check_dataset_export(spec, c):
    """Record every rule violation of DatasetExportConfig ``spec`` in Checker ``c``."""
    which = spec.WhichOneof("convert_config_type")
    if which is None:
        c.error("kitti_config", "is required (or coco_config)")
    elif which == "kitti_config":
        _check_kitti(spec.kitti_config, c)
    else:
        _check_coco(spec.coco_config, c)
    if spec.HasField("sample_modifier_config"):
        smc, path = spec.sample_modifier_config, "sample_modifier_config"
        for key in sorted(smc.minimum_target_class_imbalance):
            value = smc.minimum_target_class_imbalance[key]
            if value <= 0:
                c.error(
                    key_path(path, "minimum_target_class_imbalance", key),
                    f"must be > 0 ({value:.6g})",
                )
    for key in sorted(spec.target_class_mapping):
        if not spec.target_class_mapping[key]:
            c.error(key_path("", "target_class_mapping", key), "must not map to an empty name")


def _check_kitti(cfg, c):
    path = "kitti_config"
    c.non_empty(cfg, path, "root_directory_path")
    c.non_empty(cfg, path, "image_dir_name")
    c.non_empty(cfg, path, "label_dir_name")
    if cfg.image_extension:
        c.rule(
            cfg,
            path,
            "image_extension",
            lambda v: v.startswith("."),
            'must start with "." (e.g. ".png")',
        )
    if not c.choice(cfg, path, "partition_mode", PARTITION_MODES):
        return
    if cfg.partition_mode == "random":
        c.rule(
            cfg,
            path,
            "num_partitions",
            lambda v: v == 2,
            "must be 2 in random partition mode (validation + training)",
        )
        c.between(cfg, path, "val_split", lo=0, hi=100, hi_closed=False)
    elif not cfg.kitti_sequence_to_frames_file:
        c.error(
            join(path, "kitti_sequence_to_frames_file"), "is required in sequence partition mode"
        )


def _check_coco(cfg, c):
    path = "coco_config"
    c.non_empty(cfg, path, "root_directory_path")
    if c.rule(cfg, path, "num_partitions", lambda v: v > 0, "must be > 0"):
        n = cfg.num_partitions
        for field in ("img_dir_names", "annotation_files"):
            count = len(getattr(cfg, field))
            if count != n:
                c.error(join(path, field), f"needs one entry per partition ({count} != {n})")
        if len(cfg.num_shards) not in (1, n):
            c.error(
                join(path, "num_shards"),
                f"needs 1 value or one per partition "
                f"({len(cfg.num_shards)} values, {n} partitions)",
            )


def check_inference(spec, c):
    """Record every rule violation of Inference ``spec`` in Checker ``c``."""
    classes = []
    if c.require(spec, "", "inferencer_config"):
        classes = _check_inferencer(spec.inferencer_config, c)
    if c.require(spec, "", "bbox_handler_config"):
        _check_bbox_handler(spec.bbox_handler_config, classes, c)


def _check_inferencer(cfg, c):
    path = "inferencer_config"
    if cfg.WhichOneof("model_config_type") is None:
        c.error(path, "needs tlt_config or tensorrt_config")
    classes = []
    if c.non_empty(cfg, path, "target_classes", "at least one target class is required"):
        for i, name in enumerate(cfg.target_classes):
            if not name:
                c.error(index_path(path, "target_classes", i), "must not be empty")
            elif name in classes:
                c.error(index_path(path, "target_classes", i), f'duplicate class "{name}"')
            else:
                classes.append(name)
    c.ge(cfg, path, "batch_size", "gpu_index")
    for field in ("image_width", "image_height"):
        c.rule(
            cfg,
            path,
            field,
            lambda v: v == 0 or (v > 0 and v % STRIDE == 0),
            f"must be 0 (default) or a positive multiple of {STRIDE}",
        )
    c.choice(cfg, path, "image_channels", (0, 1, 3))
    c.choice(cfg, path, "stride", (0, STRIDE))
    return classes


def _check_bbox_handler(cfg, classes, c):
    path = "bbox_handler_config"
    c.ge(cfg, path, "overlay_linewidth")
    c.covers(cfg, path, "classwise_bbox_handler_config", classes)
    for j, name in enumerate(cfg.postproc_classes):
        if classes and name not in classes:
            c.error(index_path(path, "postproc_classes", j), f'"{name}" is not a target class')
    for key in sorted(cfg.classwise_bbox_handler_config):
        entry = cfg.classwise_bbox_handler_config[key]
        epath = key_path(path, "classwise_bbox_handler_config", key)
        if c.require(entry, epath, "clustering_config"):
            check_clustering(
                entry.clustering_config,
                join(epath, "clustering_config"),
                c,
                tao_min_samples_rule=False,
            )
        if entry.confidence_model:
            c.choice(entry, epath, "confidence_model", CONFIDENCE_MODELS)
        if entry.HasField("bbox_color"):
            c.between(entry.bbox_color, join(epath, "bbox_color"), "R", "G", "B", lo=0, hi=255)
