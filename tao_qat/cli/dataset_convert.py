"""``qat dataset_convert``: KITTI / COCO labels -> TFRecords (TAO reference §9, §10)."""

import click

from tao_qat.cli.main import verbose_option


@click.command("dataset_convert")
@click.option(
    "-d",
    "--dataset_export_spec",
    required=True,
    type=click.Path(dir_okay=False),
    help="DatasetExportConfig text spec (kitti_config or coco_config).",
)
@click.option(
    "-o",
    "--output_filename",
    required=True,
    help="Output prefix: files are named <prefix>-fold-NNN-of-NNN-shard-NNNNN-of-NNNNN.",
)
@click.option(
    "-f",
    "--validation_fold",
    type=click.IntRange(min=0),
    default=None,
    help="Validation fold (0-based) that sample_modifier_config leaves unchanged.",
)
@click.option("-r", "--results_dir", default=None, help="Folder for status.json.")
@click.option("--force", is_flag=True, help="Overwrite existing outputs at this prefix.")
@click.option(
    "--skip_image_check",
    is_flag=True,
    help="Read only image headers instead of decoding every image (faster).",
)
@verbose_option
def dataset_convert(
    dataset_export_spec, output_filename, validation_fold, results_dir, force, skip_image_check
):
    """Convert a KITTI or COCO dataset to TFRecords as TAO's dataset_convert does."""
    from tao_qat.data.convert import run_dataset_convert

    result = run_dataset_convert(
        dataset_export_spec,
        output_filename,
        validation_fold=validation_fold,
        results_dir=results_dir,
        force=force,
        check_images=not skip_image_check,
    )
    click.echo(result.format_report())
    click.echo("")
    for shard in result.shards:
        click.echo(f"wrote {shard.path} ({shard.num_records} records)")
    if result.warning_path:
        click.echo(f"wrote {result.warning_path} ({len(result.skipped)} skipped objects)")
    for path in result.removed:
        click.echo(f"removed stale {path}")
