"""``qat preview -e spec -o grid.png [-n 16] [--split train] [--seed N] [--force]``."""

import click

from tao_qat.cli.main import verbose_option


@click.command("preview")
@click.option("-e", "--experiment_spec", "spec", required=True,
              type=click.Path(exists=True, dir_okay=False), help="Experiment spec file.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="PNG file to write.")
@click.option("-n", "--num_images", default=16, show_default=True, type=click.IntRange(min=1),
              help="Images in the grid.")
@click.option("--split", default="train", show_default=True,
              type=click.Choice(["train", "validation", "train_eval"]),
              help="train shows augmented images; the others the plain network inputs.")
@click.option("--seed", type=int, default=None, help="Augmentation seed (default: random_seed).")
@click.option("--force", is_flag=True, help="Overwrite the output.")
@verbose_option
def preview(spec, output, num_images, split, seed, force):
    """Write a grid of network inputs with their boxes drawn (check the augmentation)."""
    from tao_qat.data.preview import write_preview

    click.echo(write_preview(spec, output, num_images, split, seed, force))
