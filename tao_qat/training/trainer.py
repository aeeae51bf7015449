"""``qat train``: spec -> input pipeline -> model -> cost -> fit with checkpoints, validation,
status and resume (reference §2, §3.5, §3.6).

Results layout (as TAO): ``results_dir/weights/<model_name>.hdf5`` (final model, no optimizer),
``model.epoch-<E>.hdf5`` and resumable ``checkpoints/epoch-<E>/`` every checkpoint_interval
epochs, ``experiment_spec.txt``, ``status.json`` and TensorBoard events in ``events/``.
Re-running the same command resumes from the newest complete checkpoint.
"""

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from tao_qat.common.errors import OutputExistsError, SpecError, UsageError
from tao_qat.common.fileio import atomic_write_text
from tao_qat.spec.defaults import input_shape, target_class_names, validation_epochs
from tao_qat.spec.loader import load_experiment_spec, read_spec_text
from tao_qat.spec.paths import resolve_spec_path, spec_dir_of

logger = logging.getLogger(__name__)

WEIGHTS_DIRNAME = "weights"
EVENTS_DIRNAME = "events"
SPEC_COPY = "experiment_spec.txt"


@dataclass
class TrainOptions:
    """Flags of ``qat train`` as plain values.

    Attributes:
        spec_path: experiment spec file; results_dir: output folder; model_name: final model
        file stem; key: model encryption passphrase (None = plain .hdf5); gpus: replicas on
        this node; resume: continue from the newest checkpoint; force: discard existing
        results and train from scratch; allow_cpu_replicas: mirror over logical CPUs when
        there are fewer GPUs than ``gpus`` (tests, development).
    """

    spec_path: str
    results_dir: str
    model_name: str = "model"
    key: str | None = None
    gpus: int = 1
    resume: bool = True
    force: bool = False
    allow_cpu_replicas: bool = False
    echo: object = print


@dataclass
class TrainResult:
    """What a training run produced."""

    model_path: Path
    epochs_trained: int
    resumed_from_epoch: int
    records: list
    validation: dict
    stopped_early_at_epoch: int | None = None


def final_model_path(results_dir, model_name):
    return Path(results_dir) / WEIGHTS_DIRNAME / f"{model_name}.hdf5"


def prepare_results_dir(options):
    """Create the results folder; apply --force / --no-resume; return the final model path.

    Raises OutputExistsError when the final model exists (training finished) or when results
    exist with --no-resume, unless --force.
    """
    from tao_qat.training.checkpoints import CHECKPOINTS_DIRNAME, list_checkpoints

    results_dir = Path(options.results_dir)
    final = final_model_path(results_dir, options.model_name)
    has_checkpoints = results_dir.is_dir() and bool(list_checkpoints(results_dir))
    if options.force:
        for name in (CHECKPOINTS_DIRNAME, EVENTS_DIRNAME, "status.json"):
            target = results_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        for stale in results_dir.glob("model.epoch-*.hdf5"):
            stale.unlink()
        if final.exists():
            final.unlink()
    elif final.exists():
        raise OutputExistsError(final)
    elif has_checkpoints and not options.resume:
        raise UsageError(
            f"--no-resume: {results_dir} holds checkpoints of an earlier run "
            "(use --force to discard them, or resume)"
        )
    results_dir.mkdir(parents=True, exist_ok=True)
    return final


def quantize_for_training(detector, training_config):
    """The QAT model of the float ``detector`` (``training_config.enable_qat``, reference §6).

    Raises SpecError when the model is already quantized or an excluded layer does not exist.
    """
    from tao_qat.quantization import QuantizationPolicy, create_qat_model, is_qat_model

    if is_qat_model(detector):
        raise SpecError(
            "model_config.pretrained_model_file: the model is already quantized (QAT); "
            "enable_qat needs a float model"
        )
    policy = QuantizationPolicy(
        per_channel_weights=not training_config.qat_per_tensor_weights,
        excluded_layers=tuple(training_config.qat_excluded_layers),
    )
    try:
        return create_qat_model(detector, policy)
    except UsageError as err:
        raise SpecError(f"training_config.qat_excluded_layers: {err}") from None


def run_train(options):
    """Train as the spec says; return a TrainResult. See the module docstring."""
    experiment = load_experiment_spec(options.spec_path)
    spec_dir = spec_dir_of(options.spec_path)
    model_config = experiment.model_config
    if model_config.pretrained_model_file:
        model_config.pretrained_model_file = resolve_spec_path(
            model_config.pretrained_model_file, spec_dir)
    final = prepare_results_dir(options)
    results_dir = Path(options.results_dir)

    from tao_qat.common.tensorflow_setup import keras, tf
    from tao_qat.data.decode import reraise_data_errors
    from tao_qat.data.pipeline import build_dataset
    from tao_qat.data.records import load_split
    from tao_qat.inference.detect import DetectionScorer
    from tao_qat.modeling.model_io import save_model
    from tao_qat.modeling.pretrained import build_or_load_model
    from tao_qat.objectives.cost import DetectNetCost
    from tao_qat.objectives.targets import TargetEncoder
    from tao_qat.training import callbacks as cb
    from tao_qat.training.checkpoints import (
        CheckpointCallback,
        checkpoint_interval,
        find_latest_checkpoint,
        restore_checkpoint,
    )
    from tao_qat.training.distribution import (
        build_strategy,
        global_batch_size,
        is_chief,
        steps_per_epoch,
    )
    from tao_qat.training.optimizer import build_optimizer, mixed_precision, use_mixed_precision
    from tao_qat.training.progress import ProgressCallback
    from tao_qat.training.schedules import build_learning_rate_schedule
    from tao_qat.training.status import StatusLog, TensorBoardWriter

    training = experiment.training_config
    num_epochs = training.num_epochs
    class_names = target_class_names(experiment)
    shape = input_shape(experiment)
    keras.utils.set_random_seed(experiment.random_seed)
    strategy = build_strategy(options.gpus, allow_cpu=options.allow_cpu_replicas)
    chief = is_chief(strategy)
    batch = global_batch_size(training.batch_size_per_gpu, strategy)

    train_records = load_split(experiment, "train", spec_dir)
    steps = steps_per_epoch(len(train_records), training.batch_size_per_gpu,
                            strategy.num_replicas_in_sync)
    has_validation = experiment.dataset_config.WhichOneof("dataset_split_type") is not None
    if training.learning_rate.HasField("early_stopping_annealing_schedule") and not has_validation:
        raise SpecError(
            "training_config.learning_rate.early_stopping_annealing_schedule: needs validation "
            "data (dataset_config.validation_fold or validation_data_source)")

    encoder = TargetEncoder.from_spec(experiment, shape[:2])

    def add_targets(batch_dict):
        return {**batch_dict, "targets": encoder(batch_dict)}

    with mixed_precision(use_mixed_precision(experiment.model_config)), strategy.scope():
        detector = build_or_load_model(
            experiment.model_config, training.regularizer, len(class_names), shape,
            key=options.key,
        )
        if training.enable_qat:
            detector = quantize_for_training(detector, training)
        cost = DetectNetCost.from_spec(experiment.cost_function_config, class_names)
        schedule = build_learning_rate_schedule(
            training.learning_rate, steps, num_epochs,
            experiment.evaluation_config.validation_period_during_training,
        )
        optimizer = build_optimizer(training.optimizer, training.cost_scaling, schedule)
        from tao_qat.training.train_model import DetectNetTrainModel

        train_model = DetectNetTrainModel(detector, cost)
        train_model.compile(optimizer=optimizer)

    controller = getattr(schedule, "controller", None)  # early-stopping state, or None

    def checkpoint_objects():
        objects = {"model": detector, "optimizer": optimizer,
                   "objective_weights": cost.objective_weights}
        if controller is not None:
            objects["early_stopping"] = controller
        return objects

    initial_epoch = 0
    latest = find_latest_checkpoint(results_dir) if options.resume else None
    if latest is not None:
        with strategy.scope():
            initial_epoch = restore_checkpoint(latest, checkpoint_objects())
        options.echo(f"Resuming from epoch {initial_epoch} ({latest.path})")
    # A resumed run continues the example stream where an uninterrupted run would be.
    train_dataset = build_dataset(
        experiment, "train", batch_size=batch, spec_dir=spec_dir, targets_fn=add_targets,
        records=train_records, start=initial_epoch * steps * batch,
    )
    # Multi-worker: every worker runs the same (seeded) pipeline and takes its share of each
    # global batch (the records are in memory, so there are no files to shard).
    data_options = tf.data.Options()
    data_options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    train_dataset = train_dataset.with_options(data_options)
    if chief:
        atomic_write_text(results_dir / SPEC_COPY, read_spec_text(options.spec_path))

    progress = ProgressCallback(steps, num_epochs, batch, enabled=chief)
    validation = None
    if has_validation:
        validation = cb.ValidationCallback(
            detector,
            DetectionScorer.from_spec(experiment),
            build_dataset(experiment, "validation", spec_dir=spec_dir, targets_fn=add_targets),
            validation_epochs(experiment.evaluation_config, num_epochs),
            task_cost=train_model.task_cost,
            controller=controller,
            echo=options.echo if chief else (lambda _: None),
        )
    stopped_before = controller is not None and bool(controller.should_stop.numpy())
    # Epoch lines after the checkpoint resumed from (or all, with none) are from a killed run.
    status_log = StatusLog(results_dir / "status.json", resume_epoch=initial_epoch, enabled=chief)
    tensorboard = TensorBoardWriter(results_dir / EVENTS_DIRNAME, enabled=chief)
    callbacks = [progress, cb.DivergenceGuard(results_dir), cb.AutoWeightingCallback(cost)]
    callbacks += [validation] if validation else []
    status = cb.StatusCallback(status_log, tensorboard, cost, num_epochs, progress, validation)
    # Status before checkpoint: a kill right after checkpoint E must not lose epoch E's line.
    callbacks += [
        status,
        CheckpointCallback(results_dir, checkpoint_interval(training), num_epochs,
                           checkpoint_objects, hdf5_model=detector, is_chief=chief,
                           key=options.key),
    ]
    if initial_epoch == 0:
        status_log.event("STARTED", "Starting DetectNet_v2 training")
    options.echo(
        f"Training {detector.name}: {len(train_records)} images, {steps} steps/epoch of "
        f"{batch} images, epochs {initial_epoch + 1}..{num_epochs}"
    )
    try:
        if stopped_before:
            options.echo(f"Early stopping had already stopped training at epoch {initial_epoch}")
        elif initial_epoch < num_epochs:
            with reraise_data_errors():
                train_model.fit(train_dataset, epochs=num_epochs, initial_epoch=initial_epoch,
                                steps_per_epoch=steps, callbacks=callbacks, verbose=0)
    except BaseException as exc:
        status_log.event("FAILURE", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        tensorboard.close()
    stopped_at = initial_epoch if stopped_before else (
        validation.stopped_at if validation else None)
    if chief:
        save_model(detector, final, force=True, key=options.key)
        how = f"stopped early at epoch {stopped_at}" if stopped_at else "finished"
        status_log.event("SUCCESS", f"Training {how}: {final}")
    records = status.records
    return TrainResult(final, len(records), initial_epoch, records,
                       validation.results if validation else {}, stopped_at)
