"""Resumable step runner of ``qat demo``: done-markers, output checks, step timing.

A step is *done* when all of these hold:

1. its marker ``steps/<name>.json`` parses and names the step;
2. every output file recorded in the marker still exists with the recorded size;
3. the step's own check passes (JSON parses with the expected keys, a model config reads, an
   ONNX graph passes ``onnx.checker``, a picture decodes, ...);
4. each step it depends on is done and finished at the time recorded in the marker (a step
   re-run upstream makes everything downstream run again).

Markers are written atomically after the outputs, so a kill at any moment leaves a step either
done or re-runnable; training steps then resume from their newest checkpoint.
"""

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from tao_qat.common.fileio import atomic_write_text
from tao_qat.common.progress import format_duration

logger = logging.getLogger(__name__)

STEPS_DIRNAME = "steps"


class StepUnavailable(Exception):
    """A library piece the step needs is not there (message: what is missing)."""


@dataclass
class DemoContext:
    """Shared state of a demo run: the work folder, sizes and printing.

    Attributes:
        workdir: the demo folder (absolute); settings: DemoSettings; echo: print function.
    """

    workdir: Path
    settings: object
    echo: object = print
    cache: dict = field(default_factory=dict)

    def path(self, *parts):
        return self.workdir.joinpath(*parts)

    def marker_path(self, name):
        return self.path(STEPS_DIRNAME, f"{name}.json")

    def read_marker(self, name):
        """The marker dict of step ``name``, or None if missing or unreadable."""
        try:
            data = json.loads(self.marker_path(name).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("step") == name else None


@dataclass(frozen=True)
class Step:
    """One step of the demo.

    Attributes:
        name: marker name, e.g. "train_fp32"; title: what the step does, for people.
        run: callable(ctx) doing the work; returns None or a JSON-ready dict kept in the
            marker (``marker["result"]``).
        outputs: callable(ctx) -> list of output Paths the step must leave (sizes recorded).
        check: callable(ctx) -> None when the outputs are usable, else the reason (str).
        deps: names of the steps whose outputs this step reads.
        requires: callable() -> None when the library pieces exist, else what is missing.
    """

    name: str
    title: str
    run: object
    outputs: object
    check: object = None
    deps: tuple = ()
    requires: object = None


def _sizes(ctx, paths):
    sizes = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"step output {path} was not written")
        sizes[str(path.relative_to(ctx.workdir))] = path.stat().st_size
    return sizes


def why_not_done(ctx, step):
    """None if ``step`` is done (see the module docstring), else the reason it must run."""
    marker = ctx.read_marker(step.name)
    if marker is None:
        return "not run yet"
    for relative, size in marker.get("outputs", {}).items():
        path = ctx.path(relative)
        if not path.is_file():
            return f"{relative} is missing"
        if path.stat().st_size != size:
            return f"{relative} changed size ({path.stat().st_size} != {size} bytes)"
    for dep in step.deps:
        dep_marker = ctx.read_marker(dep)
        if dep_marker is None or dep_marker.get("finished") != marker.get("deps", {}).get(dep):
            return f"step {dep} was re-run"
    if step.check is not None:
        problem = step.check(ctx)
        if problem:
            return problem
    return None


def write_marker(ctx, step, seconds, result=None):
    """Record ``step`` as done: output sizes, duration, finish time, dependency times."""
    marker = {
        "step": step.name,
        "title": step.title,
        "seconds": round(seconds, 3),
        "finished": time.time(),
        "deps": {dep: ctx.read_marker(dep)["finished"] for dep in step.deps},
        "outputs": _sizes(ctx, step.outputs(ctx)),
        "result": result,
    }
    atomic_write_text(ctx.marker_path(step.name), json.dumps(marker, indent=2) + "\n")
    return marker


@dataclass
class StepOutcome:
    """What happened to a step in this run: "done" (skipped), "ran", "unavailable" or
    "blocked" (a dependency could not run); seconds: this run's time (0 when skipped)."""

    step: Step
    status: str
    seconds: float = 0.0
    reason: str = ""


def run_steps(ctx, steps):
    """Run ``steps`` in order, skipping done ones; return a list of StepOutcome.

    A step whose ``requires`` reports a missing piece is not run (nor are steps depending on
    it); exceptions of a running step propagate (its marker is not written, so the next run
    retries it).
    """
    outcomes, skipped = [], set()
    ctx.cache["outcomes"] = outcomes  # the report step lists what this run did
    start = time.monotonic()
    total = len(steps)
    for number, step in enumerate(steps, 1):
        head = f"[{number}/{total}] {step.title}"
        blocked = [dep for dep in step.deps if dep in skipped]
        if blocked:
            skipped.add(step.name)
            outcomes.append(StepOutcome(step, "blocked", reason=f"needs {', '.join(blocked)}"))
            ctx.echo(f"{head}: not run (needs {', '.join(blocked)})")
            continue
        missing = step.requires() if step.requires else None
        if missing:
            skipped.add(step.name)
            outcomes.append(StepOutcome(step, "unavailable", reason=missing))
            ctx.echo(f"{head}: not run: {missing}")
            continue
        reason = why_not_done(ctx, step)
        if reason is None:
            seconds = ctx.read_marker(step.name)["seconds"]
            outcomes.append(StepOutcome(step, "done"))
            ctx.echo(f"{head}: done (took {format_duration(seconds)}), skipped")
            continue
        ctx.echo(
            f"{head}: running ({reason}; demo elapsed {format_duration(time.monotonic() - start)})"
        )
        began = time.monotonic()
        try:
            result = step.run(ctx)
        except StepUnavailable as exc:
            skipped.add(step.name)
            outcomes.append(StepOutcome(step, "unavailable", reason=str(exc)))
            ctx.echo(f"{head}: not run: {exc}")
            continue
        seconds = time.monotonic() - began
        problem = step.check(ctx) if step.check else None
        if problem:
            raise RuntimeError(
                f"step {step.name} finished but its outputs fail the check: {problem}"
            )
        write_marker(ctx, step, seconds, result)
        outcomes.append(StepOutcome(step, "ran", seconds))
        ctx.echo(f"{head}: finished in {format_duration(seconds)}")
    return outcomes


# ---- output checks (each returns None when fine, else a one-line reason) ------------------
def check_json(path, *keys):
    """The JSON object at ``path`` parses and has ``keys``."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        return f"{path}: unreadable JSON ({exc})"
    missing = [key for key in keys if not isinstance(data, dict) or key not in data]
    return f"{path}: no {', '.join(missing)}" if missing else None


def check_model(path, qat=None):
    """``path`` is a Keras model file whose config reads; ``qat`` True/False also checks it
    is / is not a quantization-aware model."""
    from tao_qat.common.errors import QatError
    from tao_qat.modeling.model_io import read_model_config

    try:
        config = read_model_config(path)
    except QatError as exc:
        return str(exc)
    if qat is not None:
        from tao_qat.quantization.naming import is_qat_config

        if is_qat_config(config) != qat:
            return f"{path}: {'not ' if qat else ''}a QAT model"
    return None


def check_onnx(path):
    """``path`` is an ONNX model that passes ``onnx.checker``."""
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except (OSError, ValueError, onnx.checker.ValidationError) as exc:
        return f"{path}: not a valid ONNX model ({str(exc).splitlines()[0] if str(exc) else exc})"
    return None


def check_image(path):
    """``path`` is a picture Pillow can decode."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, UnidentifiedImageError) as exc:
        return f"{path}: not a readable picture ({exc})"
    return None


def first_problem(*problems):
    """The first non-None reason of ``problems`` (callables are called lazily)."""
    for problem in problems:
        value = problem() if callable(problem) else problem
        if value:
            return value
    return None
