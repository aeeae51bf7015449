"""``qat train -e spec -r results_dir [-n name] [-k key] [--gpus N] [--resume/--no-resume]``."""

import click

from tao_qat.cli.main import verbose_option


@click.command("train")
@click.option("-e", "--experiment_spec_file", "spec", required=True,
              type=click.Path(exists=True, dir_okay=False), help="Experiment spec file.")
@click.option("-r", "--results_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for checkpoints, logs and the final model.")
@click.option("-n", "--model_name", default="model", show_default=True,
              help="Final model is results_dir/weights/<model_name>.hdf5.")
@click.option("-k", "--key", default=None, help="Passphrase to encrypt model files.")
@click.option("--gpus", default=1, show_default=True, type=click.IntRange(min=0),
              help="GPUs to train on (tf.distribute.MirroredStrategy when > 1).")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue from the newest complete checkpoint in results_dir.")
@click.option("--force", is_flag=True, help="Discard earlier results in results_dir.")
@click.option("--enable_determinism", is_flag=True,
              help="Deterministic TensorFlow ops (slower).")
@verbose_option
def train(spec, results_dir, model_name, key, gpus, resume, force, enable_determinism):
    """Train a DetectNet_v2 model (resumes automatically after an interruption)."""
    import os

    if enable_determinism:
        os.environ["TF_DETERMINISTIC_OPS"] = "1"
    cpu_replicas = int(os.environ.get("TAO_QAT_CPU_REPLICAS", "0") or 0)
    if cpu_replicas > 1:
        from tao_qat.training.distribution import configure_logical_cpus

        configure_logical_cpus(cpu_replicas)
    from tao_qat.training.trainer import TrainOptions, run_train

    result = run_train(TrainOptions(
        spec_path=spec, results_dir=results_dir, model_name=model_name, key=key, gpus=gpus,
        resume=resume, force=force, allow_cpu_replicas=cpu_replicas > 1, echo=click.echo,
    ))
    click.echo(f"Model: {result.model_path}")
