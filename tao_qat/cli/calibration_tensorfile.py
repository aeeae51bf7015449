"""``qat calibration_tensorfile -e spec -o file.h5 [-m max_batches] [--use_validation_set]``
(TAO reference §9): preprocessed calibration images in an HDF5 tensor file."""

import click

from tao_qat.cli.main import verbose_option


@click.command("calibration_tensorfile")
@click.option(
    "-e",
    "--experiment_spec_file",
    "spec",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Experiment spec file.",
)
@click.option(
    "-o",
    "--output_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="HDF5 tensor file to write (images as float32 NCHW in [0, 1]).",
)
@click.option(
    "-m",
    "--max_batches",
    type=int,
    default=-1,
    show_default=True,
    help="Batches of training_config.batch_size_per_gpu to write (-1 = all).",
)
@click.option(
    "--use_validation_set",
    is_flag=True,
    help="Use the validation split instead of the training split.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@verbose_option
def calibration_tensorfile(spec, output_path, max_batches, use_validation_set, force):
    """Write preprocessed, unaugmented images for INT8 calibration."""
    from tao_qat.export.tensorfile import TensorfileOptions, run_calibration_tensorfile

    run_calibration_tensorfile(
        TensorfileOptions(
            spec_path=spec,
            output_path=output_path,
            max_batches=max_batches,
            use_validation_set=use_validation_set,
            force=force,
            echo=click.echo,
        )
    )
