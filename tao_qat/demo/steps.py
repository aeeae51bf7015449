"""The demo's training-side steps: dataset_convert, the three trainings, prune, and Keras
evaluation; each calls the ``qat`` command's library function and knows its outputs.

Workdir layout written here (see docs/demo.md for the whole tree)::

    specs/                      every spec the demo ran (plain TAO text specs)
    tfrecords/{train,val}/      dataset_convert output + status.json
    train_fp32/                 qat train results (weights/model.hdf5, status.json, ...)
    prune/model_pruned.hdf5     qat prune output (+ .pruning.json)
    retrain_pruned/, retrain_qat/
    <training>/evaluation/      qat evaluate results.json, precision_recall.png, curves.json
"""

import contextlib
import json
import logging
from pathlib import Path

from tao_qat.common.fileio import atomic_write_text
from tao_qat.demo import specs
from tao_qat.demo.runner import Step, StepUnavailable, check_json, check_model, first_problem
from tao_qat.spec.loader import load_experiment_spec

logger = logging.getLogger(__name__)

SPLITS = ("train", "val")
FP32, RETRAIN, QAT = "train_fp32", "retrain_pruned", "retrain_qat"
TRAININGS = (FP32, RETRAIN, QAT)
PRUNED_MODEL = ("prune", "model_pruned.hdf5")


# ---- data ----------------------------------------------------------------------------------
def _convert_status(ctx, split):
    return ctx.path("tfrecords", split, "status.json")


def convert_outputs(ctx):
    paths = []
    for split in SPLITS:
        status = _convert_status(ctx, split)
        paths.append(status)
        with contextlib.suppress(OSError, ValueError, KeyError):
            paths += [Path(p) for p in json.loads(status.read_text())["outputs"]]
    return paths


def convert_check(ctx):
    for split in SPLITS:
        status = _convert_status(ctx, split)
        problem = check_json(status, "status", "outputs", "num_records")
        if problem:
            return problem
        data = json.loads(status.read_text())
        if data["status"] != "SUCCESS" or not data["outputs"]:
            return f"{status}: conversion did not succeed"
        records = sum(data["num_records"].values())
        expected = len(list(specs.label_dir(split).glob("*.txt")))
        if records != expected:
            return f"{status}: {records} records for {expected} {split} tiles"
    return None


def convert_run(ctx):
    from tao_qat.data.convert import run_dataset_convert

    for split in SPLITS:
        spec_path = specs.write_spec(
            specs.convert_spec(split),
            ctx.path("specs", f"tfrecords_{split}.txt"),
            header=f"qat demo: dataset_convert, {split} tiles",
        )
        result = run_dataset_convert(
            spec_path,
            ctx.path("tfrecords", split, f"trees_{split}"),
            results_dir=ctx.path("tfrecords", split),
            force=True,
        )
        ctx.echo(result.format_report())


# ---- training ------------------------------------------------------------------------------
def spec_path(ctx, name):
    return ctx.path("specs", f"{name}.txt")


def model_path(ctx, name):
    """Final model of training ``name`` (TAO layout: <results>/weights/model.hdf5)."""
    return ctx.path(name, "weights", "model.hdf5")


def experiment_of(ctx, name):
    """The parsed experiment spec of training ``name`` (as written by its step)."""
    return load_experiment_spec(spec_path(ctx, name))


TRAINING_SPECS = {
    FP32: lambda ctx: specs.experiment_spec(
        ctx.settings, ctx.path("tfrecords"), ctx.settings.fp32_epochs
    ),
    RETRAIN: lambda ctx: specs.experiment_spec(
        ctx.settings,
        ctx.path("tfrecords"),
        ctx.settings.retrain_epochs,
        pretrained_model_file=ctx.path(*PRUNED_MODEL),
        load_graph=True,
    ),
    QAT: lambda ctx: specs.experiment_spec(
        ctx.settings,
        ctx.path("tfrecords"),
        ctx.settings.qat_epochs,
        pretrained_model_file=model_path(ctx, RETRAIN),
        load_graph=True,
        enable_qat=True,
        max_learning_rate=ctx.settings.qat_learning_rate,
    ),
}
TRAINING_TITLES = {
    FP32: "Train FP32 DetectNet_v2 (qat train)",
    RETRAIN: "Retrain the pruned model (qat train, load_graph)",
    QAT: "QAT retrain (qat train, enable_qat: true)",
}


def train_outputs(name):
    return lambda ctx: [model_path(ctx, name), ctx.path(name, "status.json"), spec_path(ctx, name)]


def train_check(name):
    def check(ctx):
        return first_problem(
            check_model(model_path(ctx, name), qat=(name == QAT)),
            lambda: _status_succeeded(ctx.path(name, "status.json")),
        )

    return check


def _status_succeeded(path):
    from tao_qat.training.status import read_status

    records = read_status(path)
    if not records or records[-1].get("status") != "SUCCESS":
        return f"{path}: training did not finish with SUCCESS"
    return None


def _newer_than_deps(ctx, path, deps):
    """True if ``path`` was written after every dependency step finished."""
    finished = [(ctx.read_marker(dep) or {}).get("finished", float("inf")) for dep in deps]
    return path.exists() and path.stat().st_mtime >= max(finished, default=0.0)


def train_run(name, deps):
    """Run training ``name``; resume its checkpoints only if they belong to the current inputs.

    The spec is written when the training starts; if it is older than a dependency (an upstream
    step was re-run), the old results are discarded (``force``) and training starts over.
    """

    def run(ctx):
        from tao_qat.training.trainer import TrainOptions, run_train

        path, final, results = spec_path(ctx, name), model_path(ctx, name), ctx.path(name)
        current = _newer_than_deps(ctx, path, deps)
        if current and final.exists() and train_check(name)(ctx) is None:
            ctx.echo(f"{final} is complete (stopped before its step was recorded); kept")
            return None
        if not current:
            specs.write_spec(TRAINING_SPECS[name](ctx), path, header=f"qat demo: {name}")
        result = run_train(
            TrainOptions(
                spec_path=str(path),
                results_dir=str(results),
                force=not current or final.exists(),
                echo=ctx.echo,
            )
        )
        if name == QAT and check_model(final, qat=True):
            raise StepUnavailable(
                "qat train ignored training_config.enable_qat (the trainer "
                "does not apply the QAT rewrite): no QAT model"
            )
        return {
            "epochs_trained": result.epochs_trained,
            "resumed_from_epoch": result.resumed_from_epoch,
        }

    return run


def training_step(name, deps):
    return Step(
        name,
        TRAINING_TITLES[name],
        train_run(name, deps),
        train_outputs(name),
        train_check(name),
        deps,
    )


# ---- prune ---------------------------------------------------------------------------------
def prune_outputs(ctx):
    model = ctx.path(*PRUNED_MODEL)
    return [model, model.with_suffix(".pruning.json")]


def prune_check(ctx):
    model, report = prune_outputs(ctx)
    return first_problem(
        check_model(model, qat=False), lambda: check_json(report, "parameters", "pruning_ratio")
    )


def prune_run(ctx):
    from tao_qat.pruning.run_prune import PruneOptions, run_prune
    from tao_qat.pruning.threshold_search import choose_threshold

    source = model_path(ctx, FP32)
    threshold, expected = choose_threshold(source, ctx.settings.prune_target_ratio)
    ctx.echo(
        f"Pruning threshold {threshold:g}: keeps {100 * expected:.1f}% of the conv weights "
        f"(target <= {100 * ctx.settings.prune_target_ratio:.0f}%)"
    )
    result = run_prune(
        PruneOptions(
            model_path=str(source),
            output_path=str(ctx.path(*PRUNED_MODEL)),
            threshold=threshold,
            force=True,
            echo=ctx.echo,
        )
    )
    return {"threshold": threshold, "pruning_ratio": result.report.to_dict()["pruning_ratio"]}


# ---- Keras evaluation ----------------------------------------------------------------------
def evaluation_dir(ctx, name):
    return ctx.path(name, "evaluation")


def evaluation_outputs(ctx, folder):
    return [folder / "results.json", folder / "precision_recall.png", folder / "curves.json"]


def evaluation_check(folder):
    return first_problem(
        check_json(folder / "results.json", "mean_average_precision", "classes"),
        lambda: check_json(folder / "curves.json", "classes"),
    )


def run_evaluation(ctx, spec, model, folder):
    """``qat evaluate -e spec -m model -r folder``, then the PR curves as curves.json.

    Returns {"mean_average_precision": float, "median_ms": float}.
    """
    from tao_qat.inference.run_evaluate import EvaluateOptions, run_evaluate

    result = run_evaluate(
        EvaluateOptions(
            spec_path=str(spec),
            model_path=str(model),
            results_dir=str(folder),
            force=True,
            echo=ctx.echo,
        )
    )
    curves = {
        c.name: {
            "average_precision": float(c.average_precision),
            "num_ground_truth": int(c.num_ground_truth),
            "precision": [float(v) for v in c.precision],
            "recall": [float(v) for v in c.recall],
        }
        for c in result.classes
    }
    atomic_write_text(
        folder / "curves.json", json.dumps({"model": str(model), "classes": curves}) + "\n"
    )
    seconds = result.metadata.get("median_inference_seconds") or 0.0
    return {
        "mean_average_precision": float(result.mean_average_precision),
        "median_ms": 1000 * float(seconds),
    }


def evaluate_step(name):
    def run(ctx):
        return run_evaluation(
            ctx, spec_path(ctx, name), model_path(ctx, name), evaluation_dir(ctx, name)
        )

    return Step(
        f"evaluate_{name}",
        f"Evaluate {name} (qat evaluate, Keras)",
        run,
        lambda ctx: evaluation_outputs(ctx, evaluation_dir(ctx, name)),
        lambda ctx: evaluation_check(evaluation_dir(ctx, name)),
        (name,),
    )


def training_steps():
    """Steps from the tiles to the evaluated QAT model, in order."""
    return [
        Step(
            "convert",
            "Convert the tree tiles to TFRecords (qat dataset_convert)",
            convert_run,
            convert_outputs,
            convert_check,
        ),
        training_step(FP32, ("convert",)),
        evaluate_step(FP32),
        Step(
            "prune",
            "Prune the FP32 model (qat prune)",
            prune_run,
            prune_outputs,
            prune_check,
            (FP32,),
        ),
        training_step(RETRAIN, ("prune",)),
        evaluate_step(RETRAIN),
        training_step(QAT, (RETRAIN,)),
        evaluate_step(QAT),
    ]
