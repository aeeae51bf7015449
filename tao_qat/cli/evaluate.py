"""``qat evaluate -e spec -m model [-f tlt] [--use_training_set] [-r dir]`` or
``qat evaluate -e spec --predictions_dir DIR [--label_dir DIR]``."""

import click

from tao_qat.cli.main import verbose_option


@click.command("evaluate")
@click.option("-e", "--experiment_spec", "spec", required=True,
              type=click.Path(exists=True, dir_okay=False), help="Experiment spec file.")
@click.option("-m", "--model_path", "model", type=click.Path(exists=True, dir_okay=False),
              help="Model to evaluate (.hdf5, or .onnx with -f onnx).")
@click.option("-f", "--framework", default=None,
              type=click.Choice(["tlt", "onnx", "tensorrt"]),
              help="Model format: tlt (.hdf5), onnx (ONNX Runtime, FP32 or Q/DQ INT8) or tensorrt "
              "(.engine); "
              "default: from the file suffix.")
@click.option("-k", "--key", default=None, help="Passphrase of an encrypted model.")
@click.option("--use_training_set", is_flag=True, help="Evaluate on the training split.")
@click.option("-r", "--results_dir", type=click.Path(file_okay=False),
              help="Write results.json and precision_recall.png here.")
@click.option("--predictions_dir", type=click.Path(exists=True, file_okay=False),
              help="Score KITTI detection files (confidence in the 16th field) instead.")
@click.option("-l", "--label_dir", type=click.Path(exists=True, file_okay=False),
              help="With --predictions_dir: KITTI labels (default: the spec's validation set).")
@click.option("-b", "--batch_size", type=click.IntRange(min=1), default=None,
              help="Batch size (default: training_config.batch_size_per_gpu).")
@click.option("--force", is_flag=True, help="Overwrite existing results in results_dir.")
@verbose_option
def evaluate(spec, model, framework, key, use_training_set, results_dir, predictions_dir,
             label_dir, batch_size, force):
    """Evaluate a model: per-class average precision and mAP."""
    from tao_qat.inference.run_evaluate import EvaluateOptions, run_evaluate

    if label_dir and not predictions_dir:
        raise click.UsageError("--label_dir needs --predictions_dir")
    run_evaluate(EvaluateOptions(
        spec_path=spec, model_path=model, framework=framework, key=key,
        use_training_set=use_training_set, results_dir=results_dir,
        predictions_dir=predictions_dir, label_dir=label_dir, batch_size=batch_size,
        force=force, echo=click.echo,
    ))
