"""``qat demo``: the whole PTQ-vs-QAT story on the vendored tree tiles, resumable step by step.

dataset_convert -> train FP32 -> evaluate -> prune -> retrain -> evaluate -> QAT retrain ->
evaluate -> export (PTQ INT8, QAT INT8, CPU INT8) -> evaluate every ONNX model -> pictures ->
benchmark -> report. Re-running skips every step whose outputs pass their checks
(``demo.runner``); ``force`` starts over. See docs/demo.md.
"""

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from tao_qat.common.errors import UsageError
from tao_qat.common.fileio import atomic_write_text
from tao_qat.common.progress import format_duration
from tao_qat.demo import benchmark, export_steps, pictures, report, steps
from tao_qat.demo.runner import STEPS_DIRNAME, DemoContext, run_steps
from tao_qat.demo.settings import DEFAULT, DEFAULT_WORKDIR, QUICK

logger = logging.getLogger(__name__)

SETTINGS_FILE = "demo.json"
# Everything the demo writes at the top of its workdir (``force`` removes only these).
OWNED = (
    SETTINGS_FILE,
    STEPS_DIRNAME,
    "specs",
    "tfrecords",
    *steps.TRAININGS,
    "prune",
    "export",
    "eval_onnx",
    "inference",
    "benchmark",
    "figures",
    report.REPORT_MD,
    report.REPORT_HTML,
)


@dataclass
class DemoOptions:
    """Flags of ``qat demo``: workdir (-r), quick (--quick), force (--force)."""

    workdir: str = DEFAULT_WORKDIR
    quick: bool = False
    force: bool = False
    echo: object = print


@dataclass
class DemoResult:
    """What a demo run did.

    Attributes:
        workdir: the demo folder; report_md / report_html: the report files (None if not
            written); outcomes: StepOutcome per step; missing: "step: reason" of steps that
            could not run; seconds: wall time of this run.
    """

    workdir: Path
    report_md: Path | None
    report_html: Path | None
    outcomes: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    seconds: float = 0.0
    summary: str = ""


def work_steps():
    """Every step of the demo before the report, in run order."""
    return [
        *steps.training_steps(),
        *export_steps.export_steps(),
        pictures.pictures_step(),
        benchmark.benchmark_step(),
    ]


def all_steps():
    """Every step of the demo, in run order (the report last)."""
    work = work_steps()
    return [*work, report.report_step(work)]


def prepare_workdir(workdir, settings, force):
    """Create or check the workdir; with ``force`` remove what an earlier demo wrote there.

    Raises UsageError when the folder holds other files and no demo, or a demo made with other
    settings (e.g. ``--quick``) unless ``force``.
    """
    workdir = Path(workdir).expanduser().resolve()
    if workdir.exists() and not workdir.is_dir():
        raise UsageError(f"-r/--results_dir {workdir}: not a folder")
    recorded = workdir / SETTINGS_FILE
    if force and workdir.is_dir():
        for name in OWNED:
            target = workdir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    elif workdir.is_dir() and any(workdir.iterdir()):
        if not recorded.is_file():
            raise UsageError(
                f"-r/--results_dir {workdir}: holds files but no {SETTINGS_FILE} "
                "(not a qat demo folder); choose an empty or new folder"
            )
        try:
            previous = json.loads(recorded.read_text())
        except ValueError:
            previous = {}
        if previous.get("settings") != settings.as_dict():
            made = previous.get("settings", {}).get("name")
            raise UsageError(
                f"-r/--results_dir {workdir}: made with the '{made}' settings, "
                f"this run uses '{settings.name}'; add --force to start over"
            )
    workdir.mkdir(parents=True, exist_ok=True)
    if not recorded.is_file():
        atomic_write_text(recorded, json.dumps({"settings": settings.as_dict()}, indent=2) + "\n")
    return workdir


def run_demo(options):
    """Run (or resume) the demo; print Tables 1 and 2; return a DemoResult."""
    settings = QUICK if options.quick else DEFAULT
    start = time.monotonic()
    workdir = prepare_workdir(options.workdir, settings, options.force)
    ctx = DemoContext(workdir=workdir, settings=settings, echo=options.echo)
    options.echo(f"qat demo ({settings.name} settings) in {workdir}")
    every = all_steps()
    outcomes = run_steps(ctx, every)
    missing = [
        f"{o.step.name}: {o.reason}" for o in outcomes if o.status in ("unavailable", "blocked")
    ]
    md, page, summary = report.finish_report(ctx, every[:-1], missing)
    seconds = time.monotonic() - start
    options.echo("")
    options.echo(summary)
    options.echo("")
    ran = sum(o.status == "ran" for o in outcomes)
    options.echo(
        f"{ran} steps run, {sum(o.status == 'done' for o in outcomes)} skipped (done), "
        f"{len(missing)} not run; {format_duration(seconds)}. Report: {md}"
    )
    return DemoResult(workdir, md, page, outcomes, missing, seconds, summary)
