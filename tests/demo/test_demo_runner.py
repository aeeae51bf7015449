"""The resumable step runner: markers, output checks, dependency invalidation (no TensorFlow)."""

import json

import pytest

from tao_qat.demo.runner import DemoContext, Step, StepUnavailable, run_steps, why_not_done


def _writer(name, calls, text="x"):
    """A step run that counts its calls and writes ``<name>.txt``."""

    def run(ctx):
        calls.append(name)
        ctx.path(f"{name}.txt").write_text(text)
        return {"wrote": name}

    return run


def _steps(calls, check=None):
    outputs = lambda name: lambda ctx: [ctx.path(f"{name}.txt")]  # noqa: E731
    return [
        Step("a", "first", _writer("a", calls), outputs("a"), check),
        Step("b", "second", _writer("b", calls), outputs("b"), None, ("a",)),
        Step("c", "third", _writer("c", calls), outputs("c"), None, ("b",)),
    ]


@pytest.fixture
def ctx(tmp_path):
    return DemoContext(workdir=tmp_path, settings=None, echo=lambda _: None)


def test_second_run_skips_every_done_step(ctx):
    calls = []
    first = run_steps(ctx, _steps(calls))
    second = run_steps(ctx, _steps(calls))
    assert [o.status for o in first] == ["ran", "ran", "ran"]
    assert [o.status for o in second] == ["done", "done", "done"]
    assert calls == ["a", "b", "c"]
    marker = json.loads(ctx.marker_path("b").read_text())
    assert marker["outputs"] == {"b.txt": 1} and marker["result"] == {"wrote": "b"}
    assert marker["deps"] == {"a": json.loads(ctx.marker_path("a").read_text())["finished"]}


def test_a_changed_output_reruns_its_step_and_everything_downstream(ctx):
    calls = []
    run_steps(ctx, _steps(calls))
    ctx.path("b.txt").write_text("longer")  # size differs from the marker's record
    assert why_not_done(ctx, _steps([])[1]) == "b.txt changed size (6 != 1 bytes)"
    calls.clear()
    outcomes = run_steps(ctx, _steps(calls))
    assert [o.status for o in outcomes] == ["done", "ran", "ran"]
    assert calls == ["b", "c"]


def test_a_missing_output_or_marker_reruns(ctx):
    calls = []
    run_steps(ctx, _steps(calls))
    ctx.path("c.txt").unlink()
    ctx.marker_path("a").write_text("{not json")
    calls.clear()
    run_steps(ctx, _steps(calls))
    assert calls == ["a", "b", "c"]  # a's marker is unreadable: a and its dependents re-run


def test_the_step_check_is_applied_not_only_presence(ctx):
    calls = []
    check = lambda ctx: None if ctx.path("a.txt").read_text() == "x" else "a.txt: bad"  # noqa: E731
    run_steps(ctx, _steps(calls, check))
    ctx.path("a.txt").write_text("y")  # same size, wrong content
    assert why_not_done(ctx, _steps([], check)[0]) == "a.txt: bad"
    calls.clear()
    run_steps(ctx, _steps(calls, check))
    assert calls == ["a", "b", "c"]


def test_a_failing_step_writes_no_marker_and_is_retried(ctx):
    calls = []

    def boom(ctx):
        calls.append("boom")
        raise RuntimeError("killed")

    steps = _steps(calls)
    steps[1] = Step("b", "second", boom, lambda ctx: [ctx.path("b.txt")], None, ("a",))
    with pytest.raises(RuntimeError, match="killed"):
        run_steps(ctx, steps)
    assert ctx.read_marker("a") is not None and ctx.read_marker("b") is None
    calls.clear()
    assert [o.status for o in run_steps(ctx, _steps(calls))] == ["done", "ran", "ran"]


def test_missing_pieces_block_their_dependents_and_are_reported(ctx):
    calls = []
    steps = _steps(calls)
    steps[1] = Step(
        "b",
        "second",
        _writer("b", calls),
        lambda ctx: [ctx.path("b.txt")],
        deps=("a",),
        requires=lambda: "tao_qat.x is not there yet",
    )
    outcomes = run_steps(ctx, steps)
    assert [(o.status, o.reason) for o in outcomes] == [
        ("ran", ""),
        ("unavailable", "tao_qat.x is not there yet"),
        ("blocked", "needs b"),
    ]

    def unavailable(ctx):
        raise StepUnavailable("no QAT model")

    steps[1] = Step("b", "second", unavailable, lambda ctx: [], deps=("a",))
    outcomes = run_steps(ctx, steps)
    assert [o.status for o in outcomes] == ["done", "unavailable", "blocked"]
    assert ctx.read_marker("b") is None


def test_outputs_that_fail_their_check_after_running_raise(ctx):
    step = Step(
        "a",
        "first",
        _writer("a", []),
        lambda ctx: [ctx.path("a.txt")],
        lambda ctx: "a.txt: not what was expected",
    )
    with pytest.raises(RuntimeError, match="fail the check: a.txt: not what was expected"):
        run_steps(ctx, [step])
    assert ctx.read_marker("a") is None
