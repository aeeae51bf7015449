"""Validation rules of the ``Experiment`` spec (TAO digest §1.11; rule table in docs/specs.md).

Mirrors TAO's ``spec_handler/constants.py`` value checks (which apply to unset zeros too) plus
cross-field checks: every target class has rasterizer, postprocessing and evaluation entries,
learning-rate bounds are ordered, objectives are ``cov``/``bbox``, etc.
"""

from tao_qat.spec.checker import Checker, index_path, join, key_path

# Top-level messages TAO requires for train/evaluate (TRAINVAL_EXP_REQUIRED_MSG).
REQUIRED_MESSAGES = (
    "model_config",
    "training_config",
    "evaluation_config",
    "cost_function_config",
    "augmentation_config",
    "bbox_rasterizer_config",
    "postprocessing_config",
    "dataset_config",
)
ARCHITECTURES = (
    "resnet",
    "vgg",
    "darknet",
    "mobilenet_v1",
    "mobilenet_v2",
    "squeezenet",
    "googlenet",
    "efficientnet_b0",
)
OBJECTIVES = ("cov", "bbox")
STRIDE = 16
# ResNet depths tao_qat builds (0 means 18, as in TAO). TAO's resnet template also has 101/152.
SUPPORTED_NUM_LAYERS = (0, 10, 18, 34, 50)


def check_experiment(spec, c):
    """Record every rule violation of Experiment ``spec`` in Checker ``c``.

    Errors are grouped by top-level message in field-number order (dataset_config first).
    """
    cost = Checker(c.source)
    classes = []
    if cost.require(spec, "", "cost_function_config"):
        classes = _check_cost_function(spec.cost_function_config, cost)
    sections = {
        "dataset_config": lambda cfg, s: _check_dataset(cfg, classes, s),
        "augmentation_config": _check_augmentation,
        "postprocessing_config": lambda cfg, s: _check_postprocessing(cfg, classes, s),
        "model_config": _check_model,
        "evaluation_config": lambda cfg, s: _check_evaluation(cfg, classes, s),
        "training_config": _check_training,
        "bbox_rasterizer_config": lambda cfg, s: _check_rasterizer(cfg, classes, s),
    }
    for field in spec.DESCRIPTOR.fields:  # in field-number order
        if field.name == "cost_function_config":
            c.errors.extend(cost.errors)
        elif field.name in REQUIRED_MESSAGES and c.require(spec, "", field.name):
            sections[field.name](getattr(spec, field.name), c)
        elif field.name == "loss_mask_label_filter" and spec.HasField(field.name):
            _check_loss_mask(spec.loss_mask_label_filter, classes, c)


def _check_cost_function(cfg, c):
    """Check target classes and objectives; return the valid target class names in order."""
    path = "cost_function_config"
    names = []
    c.non_empty(cfg, path, "target_classes", "at least one target class is required")
    for i, target in enumerate(cfg.target_classes):
        tpath = index_path(path, "target_classes", i)
        if c.non_empty(target, tpath, "name"):
            if target.name in names:
                c.error(join(tpath, "name"), f'duplicate target class "{target.name}"')
            else:
                names.append(target.name)
        c.ge(target, tpath, "class_weight")
        c.between(target, tpath, "coverage_foreground_weight")
        seen = []
        for j, objective in enumerate(target.objectives):
            opath = index_path(tpath, "objectives", j)
            if c.choice(objective, opath, "name", OBJECTIVES):
                if objective.name in seen:
                    c.error(join(opath, "name"), f'duplicate objective "{objective.name}"')
                seen.append(objective.name)
            c.ge(objective, opath, "initial_weight", "weight_target")
        missing = [o for o in OBJECTIVES if o not in seen]
        if missing:
            c.error(
                join(tpath, "objectives"),
                f"needs objectives cov and bbox (missing {', '.join(missing)})",
            )
    c.ge(cfg, path, "max_objective_weight", "min_objective_weight")
    if cfg.enable_autoweighting:
        c.not_greater(cfg, path, "min_objective_weight", "max_objective_weight")
    return names


def _check_model(cfg, c):
    path = "model_config"
    c.choice(cfg, path, "arch", ARCHITECTURES)
    c.choice(cfg, path, "num_layers", SUPPORTED_NUM_LAYERS)
    c.between(cfg, path, "dropout_rate")
    if c.require(cfg, path, "objective_set"):
        opath = join(path, "objective_set")
        if c.require(cfg.objective_set, opath, "bbox"):
            c.gt(cfg.objective_set.bbox, join(opath, "bbox"), "scale")
            c.ge(cfg.objective_set.bbox, join(opath, "bbox"), "offset")
        c.require(cfg.objective_set, opath, "cov")
    if cfg.training_precision.backend_floatx == cfg.TrainingPrecision.INVALID:
        c.error(join(path, "training_precision.backend_floatx"), "must be FLOAT32 or FLOAT16")
    for i, block in enumerate(cfg.freeze_blocks):
        if block not in (0, 1, 2, 3, 4):
            c.error(index_path(path, "freeze_blocks", i), f"must be a block id 0..4 ({block:g})")
    needs_file = [f for f in ("load_graph", "freeze_pretrained_layers") if getattr(cfg, f)]
    needs_file += ["freeze_blocks"] if len(cfg.freeze_blocks) else []
    if needs_file and not cfg.pretrained_model_file:
        c.error(
            join(path, "pretrained_model_file"), f"is required when {' / '.join(needs_file)} is set"
        )


def _check_data_source(source, path, c):
    c.non_empty(source, path, "tfrecords_path")
    c.non_empty(source, path, "image_directory_path")
    c.ge(source, path, "source_weight")


def _check_dataset(cfg, classes, c):
    path = "dataset_config"
    c.non_empty(cfg, path, "data_sources", "at least one data source is required")
    for i, source in enumerate(cfg.data_sources):
        _check_data_source(source, index_path(path, "data_sources", i), c)
    if cfg.HasField("validation_data_source"):
        _check_data_source(cfg.validation_data_source, join(path, "validation_data_source"), c)
    if c.non_empty(cfg, path, "image_extension"):
        c.rule(
            cfg,
            path,
            "image_extension",
            lambda v: not v.startswith("."),
            'must not start with "." (TAO appends "." + image_extension)',
        )
    mapping = cfg.target_class_mapping
    for key in sorted(mapping):
        if key != key.lower():
            c.error(
                key_path(path, "target_class_mapping", key),
                "key must be lower-case (dataset_convert lower-cases class names)",
            )
    if mapping:
        targets = set(mapping.values())
        for name in classes:
            if name not in targets:
                c.error(
                    join(path, "target_class_mapping"),
                    f'maps no source class to target class "{name}"',
                )


def _check_augmentation(cfg, c):
    path = "augmentation_config"
    if c.require(cfg, path, "preprocessing"):
        pre, ppath = cfg.preprocessing, join(path, "preprocessing")
        for field in ("output_image_width", "output_image_height"):
            if c.rule(pre, ppath, field, lambda v: v > 0, "must be > 0"):
                c.multiple_of(pre, ppath, field, STRIDE)
        c.choice(pre, ppath, "output_image_channel", (1, 3))
        c.ge(pre, ppath, "min_bbox_width", "min_bbox_height", "scale_width", "scale_height")
        if pre.crop_left or pre.crop_top or pre.crop_right or pre.crop_bottom:
            c.not_greater(pre, ppath, "crop_left", "crop_right")
            c.not_greater(pre, ppath, "crop_top", "crop_bottom")
    if cfg.HasField("spatial_augmentation"):
        spatial, spath = cfg.spatial_augmentation, join(path, "spatial_augmentation")
        c.between(spatial, spath, "hflip_probability", "vflip_probability", "rotate_probability")
        c.gt(spatial, spath, "zoom_min")
        c.ge(spatial, spath, "zoom_max", "translate_max_x", "translate_max_y", "rotate_rad_max")
        c.not_greater(spatial, spath, "zoom_min", "zoom_max")
    if cfg.HasField("color_augmentation"):
        color, cpath = cfg.color_augmentation, join(path, "color_augmentation")
        c.between(
            color,
            cpath,
            "color_shift_stddev",
            "saturation_shift_max",
            "contrast_scale_max",
            "contrast_center",
        )
        c.ge(color, cpath, "hue_rotation_max")


def _check_rasterizer(cfg, classes, c):
    path = "bbox_rasterizer_config"
    if c.non_empty(cfg, path, "target_class_config", "needs one entry per target class"):
        c.covers(cfg, path, "target_class_config", classes)
    for key in sorted(cfg.target_class_config):
        entry, epath = cfg.target_class_config[key], key_path(path, "target_class_config", key)
        c.between(entry, epath, "cov_center_x", "cov_center_y", "bbox_min_radius")
        c.between(entry, epath, "cov_radius_x", "cov_radius_y", lo_closed=False)
    c.between(cfg, path, "deadzone_radius")


def check_clustering(cfg, path, c, tao_min_samples_rule=True):
    """Rules of a ClusteringConfig (train/evaluate, and inference's classwise handler)."""
    c.between(
        cfg,
        path,
        "coverage_threshold",
        "dbscan_eps",
        "dbscan_confidence_threshold",
        "nms_iou_threshold",
        "nms_confidence_threshold",
    )
    c.ge(cfg, path, "minimum_bounding_box_height")
    if tao_min_samples_rule:
        c.between(cfg, path, "dbscan_min_samples", "neighborhood_size")
    else:
        c.ge(cfg, path, "dbscan_min_samples", "neighborhood_size")


def _check_postprocessing(cfg, classes, c):
    path = "postprocessing_config"
    c.covers(cfg, path, "target_class_config", classes)
    for key in sorted(cfg.target_class_config):
        entry, epath = cfg.target_class_config[key], key_path(path, "target_class_config", key)
        if c.require(entry, epath, "clustering_config"):
            check_clustering(entry.clustering_config, join(epath, "clustering_config"), c)
        confidence, cpath = entry.confidence_config, join(epath, "confidence_config")
        c.between(confidence, cpath, "confidence_threshold")
        c.rule(
            confidence,
            cpath,
            "confidence_model_filename",
            lambda v: not v,
            "confidence models are not supported (TAO disables them too)",
        )


def _check_training(cfg, c):
    path = "training_config"
    c.gt(cfg, path, "batch_size_per_gpu", "num_epochs")
    if c.require(cfg, path, "learning_rate"):
        _check_learning_rate(cfg.learning_rate, join(path, "learning_rate"), c)
    if c.require(cfg, path, "regularizer"):
        c.ge(cfg.regularizer, join(path, "regularizer"), "weight")
    if c.require(cfg, path, "optimizer"):
        opath = join(path, "optimizer")
        if c.require(cfg.optimizer, opath, "adam"):
            adam, apath = cfg.optimizer.adam, join(opath, "adam")
            c.gt(adam, apath, "epsilon")
            c.between(adam, apath, "beta1", "beta2", lo_closed=False, hi_closed=False)
    if c.require(cfg, path, "cost_scaling"):
        c.gt(
            cfg.cost_scaling,
            join(path, "cost_scaling"),
            "initial_exponent",
            "increment",
            "decrement",
        )
    if cfg.HasField("visualizer"):
        vpath = join(path, "visualizer")
        for key in sorted(cfg.visualizer.target_class_config):
            c.between(
                cfg.visualizer.target_class_config[key],
                key_path(vpath, "target_class_config", key),
                "coverage_threshold",
            )


def _check_learning_rate(cfg, path, c):
    which = cfg.WhichOneof("learning_rate")
    if which is None:
        c.error(path, "needs soft_start_annealing_schedule or early_stopping_annealing_schedule")
        return
    schedule, spath = getattr(cfg, which), join(path, which)
    c.gt(schedule, spath, "min_learning_rate", "max_learning_rate")
    c.not_greater(schedule, spath, "min_learning_rate", "max_learning_rate")
    if which == "soft_start_annealing_schedule":
        c.between(schedule, spath, "soft_start", "annealing", hi_closed=False)
        c.not_greater(schedule, spath, "soft_start", "annealing")
    else:
        c.not_greater(schedule, spath, "soft_start_epochs", "annealing_epochs")


def _check_evaluation(cfg, classes, c):
    path = "evaluation_config"
    c.gt(cfg, path, "validation_period_during_training", "first_validation_epoch")
    c.covers(cfg, path, "minimum_detection_ground_truth_overlap", classes)
    overlaps = cfg.minimum_detection_ground_truth_overlap
    for key in sorted(overlaps):
        if not 0 <= overlaps[key] <= 1:
            c.error(
                key_path(path, "minimum_detection_ground_truth_overlap", key),
                f"must be in [0, 1] ({overlaps[key]:.6g})",
            )
    c.covers(cfg, path, "evaluation_box_config", classes)
    for key in sorted(cfg.evaluation_box_config):
        box, bpath = cfg.evaluation_box_config[key], key_path(path, "evaluation_box_config", key)
        c.ge(box, bpath, "minimum_height", "minimum_width")
        c.gt(box, bpath, "maximum_height", "maximum_width")
        c.not_greater(box, bpath, "minimum_height", "maximum_height")
        c.not_greater(box, bpath, "minimum_width", "maximum_width")


def _check_loss_mask(cfg, classes, c):
    path = "loss_mask_label_filter"
    c.ge(cfg, path, "mask_multiplier")
    for i, entry in enumerate(cfg.objective_label_filter_configs):
        epath = index_path(path, "objective_label_filter_configs", i)
        for j, name in enumerate(entry.target_class_names):
            if name not in classes:
                c.error(
                    index_path(epath, "target_class_names", j), f'"{name}" is not a target class'
                )
        for j, name in enumerate(entry.objective_names):
            if name not in OBJECTIVES:
                c.error(
                    index_path(epath, "objective_names", j),
                    f'must be one of "cov", "bbox" ("{name}")',
                )
