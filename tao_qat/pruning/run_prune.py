"""``qat prune``: load a model, plan the kept filters, rebuild it smaller, save it (TAO §7).

The pruned .hdf5 is a plain functional tf_keras model with TAO's layer names; retrain it with
``pretrained_model_file: <pruned>.hdf5`` and ``load_graph: true``. Next to it goes
``<name>.pruning.json`` (per-layer filters, parameters, FLOPs, pruning ratio); with
``results_dir`` a TAO-style ``status.json`` record carries the KPIs. With a key (``-k``) the
input may be encrypted and the output is encrypted with it, as TAO does.
"""

import dataclasses
import json
import logging
from pathlib import Path

from tao_qat.common.fileio import atomic_write_text, check_writable_output
from tao_qat.modeling.model_io import load_model_file, save_model
from tao_qat.pruning.plan import PruneSettings, plan_pruning
from tao_qat.pruning.report import build_report, format_report
from tao_qat.pruning.rules import DEFAULT_RULES, UnprunableModelError

logger = logging.getLogger(__name__)

REPORT_SUFFIX = ".pruning.json"


@dataclasses.dataclass
class PruneOptions:
    """Flags of ``qat prune`` as plain values (see the CLI help; defaults as in TAO)."""

    model_path: str
    output_path: str
    key: str | None = None
    normalizer: str = "max"
    criterion: str = "union"
    granularity: int = 8
    threshold: float = 0.1
    min_num_filters: int = 16
    excluded_layers: tuple = ()
    results_dir: str | None = None
    force: bool = False
    custom_objects: dict | None = None
    rules: object = DEFAULT_RULES
    echo: object = print

    def settings(self):
        """The PruneSettings of these options (validated)."""
        return PruneSettings(
            normalizer=self.normalizer,
            criterion=self.criterion,
            granularity=int(self.granularity),
            threshold=float(self.threshold),
            min_num_filters=int(self.min_num_filters),
            excluded=tuple(self.excluded_layers),
        ).validate()


@dataclasses.dataclass
class PruneResult:
    """Paths written by ``run_prune`` and the report."""

    model_path: Path
    report_path: Path
    status_path: Path | None
    report: object


def output_paths(output_path):
    """(model path with ``.hdf5`` appended if missing, as TAO does; JSON report path)."""
    path = Path(output_path)
    if path.suffix != ".hdf5":
        path = path.with_name(path.name + ".hdf5")
    return path, path.with_suffix(REPORT_SUFFIX)


def prune_model(model, settings, rules=DEFAULT_RULES, custom_objects=None):
    """Prune an in-memory functional model; return (pruned keras.Model, PruningPlan).

    ``model`` is not modified. Raises UnprunableModelError naming the offending layer.
    """
    from tao_qat.pruning.surgery import apply_plan, layer_weights

    weights = layer_weights(model)
    kernels = {name: arrays["kernel"] for name, arrays in weights.items() if "kernel" in arrays}
    plan = plan_pruning(model.get_config(), kernels, settings, rules)
    return apply_plan(model, plan, rules, custom_objects, weights), plan


def _write_status(results_dir, report, model_path):
    from tao_qat.training.status import StatusLog

    status_path = Path(results_dir) / "status.json"
    StatusLog(status_path).write(
        {
            "kpi": {
                "pruning_ratio": report.pruning_ratio,
                "size": model_path.stat().st_size / 2**20,
                "param_count": report.params_after,
            }
        },
        status="SUCCESS",
        message=f"Pruning ratio (pruned model / original model): {report.pruning_ratio}",
    )
    return status_path


def run_prune(options):
    """Prune ``options.model_path`` into ``options.output_path``; print and return the result.

    Raises:
        OutputExistsError if an output exists without ``force``; UsageError for bad flags;
        DataError (UnprunableModelError) naming the model file and the layer it cannot prune.
    """
    settings = options.settings()
    model_path, report_path = output_paths(options.output_path)
    for path in (model_path, report_path):
        check_writable_output(path, options.force)
    model = load_model_file(
        options.model_path, custom_objects=options.custom_objects, key=options.key
    )
    try:
        pruned, plan = prune_model(model, settings, options.rules, options.custom_objects)
    except UnprunableModelError as err:
        raise UnprunableModelError(f"{options.model_path}: {err}") from None
    if plan.is_identity():
        logger.warning("no filter was removed (threshold %s)", settings.threshold)
    report = build_report(model, pruned, plan, settings)
    report.paths = {"model": str(options.model_path), "output": str(model_path)}
    save_model(pruned, model_path, force=options.force, key=options.key)
    atomic_write_text(report_path, json.dumps(report.to_dict(), indent=2) + "\n")
    status_path = None
    if options.results_dir:
        status_path = _write_status(options.results_dir, report, model_path)
    options.echo(format_report(report))
    options.echo(f"Wrote {model_path} and {report_path}")
    return PruneResult(model_path, report_path, status_path, report)
