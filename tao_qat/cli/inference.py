"""``qat inference -e inference_spec -i image_or_dir -r results_dir [-m model] [-b batch]``."""

import click

from tao_qat.cli.main import verbose_option


@click.command("inference")
@click.option("-e", "--experiment_spec", "spec", required=True,
              type=click.Path(exists=True, dir_okay=False), help="Inference spec file.")
@click.option("-i", "--image_dir", "images", required=True, type=click.Path(exists=True),
              help="An image (jpg/jpeg/png/ppm) or a folder of images.")
@click.option("-r", "--results_dir", required=True, type=click.Path(file_okay=False),
              help="Writes images_annotated/ and labels/ here.")
@click.option("-m", "--model_path", "model", type=click.Path(exists=True, dir_okay=False),
              help="Model (.hdf5); overrides inferencer_config.tlt_config.model.")
@click.option("-b", "--batch_size", type=click.IntRange(min=1), default=None,
              help="Images per batch (default: inferencer_config.batch_size or 1).")
@click.option("-k", "--key", default=None, help="Passphrase of an encrypted model.")
@click.option("--force", is_flag=True, help="Overwrite existing outputs.")
@verbose_option
def inference(spec, images, results_dir, model, batch_size, key, force):
    """Detect objects in images; write annotated images and KITTI label files."""
    from tao_qat.inference.run_inference import InferenceOptions, run_inference

    run_inference(InferenceOptions(
        spec_path=spec, image_path=images, results_dir=results_dir, model_path=model,
        batch_size=batch_size, key=key, force=force, echo=click.echo,
    ))
