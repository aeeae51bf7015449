"""``qat validate_spec``: parse and validate a spec file, print a short summary or every error."""

import click

from tao_qat.cli.main import verbose_option
from tao_qat.common.errors import SpecError
from tao_qat.spec import defaults
from tao_qat.spec.loader import SPEC_KINDS, load_spec
from tao_qat.spec.validation import collect_errors


def _validation_data(dataset_config):
    split = dataset_config.WhichOneof("dataset_split_type")
    if split == "validation_fold":
        return f"validation fold {dataset_config.validation_fold}"
    return "validation data source" if split else "no validation data"


def _experiment_summary(spec):
    pre = spec.augmentation_config.preprocessing
    model = spec.model_config
    training = spec.training_config
    arch = f"{model.arch}{defaults.num_layers(model)}"
    size = f"{pre.output_image_width}x{pre.output_image_height}x{pre.output_image_channel}"
    epochs = f"{training.num_epochs} epochs, batch size {training.batch_size_per_gpu}"
    sources = len(spec.dataset_config.data_sources)
    return [
        ("classes", ", ".join(defaults.target_class_names(spec))),
        ("input", f"{size} (WxHxC)"),
        ("model", arch + (" (load_graph)" if model.load_graph else "")),
        ("training", epochs + (", QAT" if training.enable_qat else "")),
        ("data", f"{sources} source(s), {_validation_data(spec.dataset_config)}"),
    ]


def _dataset_export_summary(spec):
    which = spec.WhichOneof("convert_config_type")
    cfg = getattr(spec, which)
    if which == "kitti_config":
        split = (
            f"random, val_split {cfg.val_split:g}%"
            if cfg.partition_mode == "random"
            else "sequence"
        )
        shards = f"{cfg.num_shards} shard(s) each" if cfg.num_shards else "unsharded"
        return [
            ("source", "KITTI"),
            ("root", cfg.root_directory_path),
            (
                "images",
                f"{cfg.image_dir_name}/*{defaults.kitti_image_extension(cfg)}, labels "
                f"{cfg.label_dir_name}/",
            ),
            ("partitions", f"{cfg.num_partitions} ({split}), {shards}"),
        ]
    return [
        ("source", "COCO"),
        ("root", cfg.root_directory_path),
        ("partitions", f"{cfg.num_partitions}: " + ", ".join(cfg.img_dir_names)),
        ("shards", ", ".join(str(s) for s in cfg.num_shards)),
    ]


def _inference_summary(spec):
    cfg = spec.inferencer_config
    which = cfg.WhichOneof("model_config_type")
    model = cfg.tlt_config.model if which == "tlt_config" else "tensorrt_config"
    height, width = defaults.inference_image_size(cfg)
    return [
        ("classes", ", ".join(cfg.target_classes)),
        ("model", model or "(none: pass -m)"),
        ("input", f"{width}x{height}x{defaults.inference_image_channels(cfg)} (WxHxC)"),
    ]


_SUMMARIES = {
    "experiment": _experiment_summary,
    "dataset_export": _dataset_export_summary,
    "inference": _inference_summary,
}


@click.command("validate_spec")
@click.option(
    "-e",
    "--experiment_spec",
    "--experiment_spec_file",
    "spec_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Spec file to check.",
)
@click.option(
    "--kind",
    type=click.Choice(list(SPEC_KINDS)),
    default=None,
    help="Spec kind (default: detected from the top-level fields).",
)
@verbose_option
def validate_spec(spec_path, kind):
    """Check a TAO spec file (experiment, dataset_export or inference) and summarise it.

    Exits 0 when the spec is valid; otherwise prints every error, one per line.
    """
    kind, spec = load_spec(spec_path, kind=kind, validate=False)
    errors = collect_errors(spec, kind, spec_path)
    if errors:
        for line in errors:
            click.echo(line, err=True)
        count = f"{len(errors)} error{'s' if len(errors) > 1 else ''}"
        raise SpecError(f"{spec_path}: invalid {kind} spec ({count})")
    click.echo(f"{spec_path}: valid {kind} spec")
    for label, value in _SUMMARIES[kind](spec):
        click.echo(f"  {label + ':':<11} {value}")
