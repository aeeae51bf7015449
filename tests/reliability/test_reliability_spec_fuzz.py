"""Property-based fuzzing of spec files: damaged specs give one located error, never a traceback.

Valid specs (tests/data/specs, examples/trees/specs) are damaged by the strategies of
``spec_mutations`` (deleted lines, swapped values, wrong types, unknown fields, truncation,
random bytes, ...) and fed to ``qat validate_spec`` (500 cases) and ``qat train`` (50 cases,
only specs that fail validation, so no training starts). Runs are reproducible: the examples
derive from the test name (``derandomize``); set QAT_FUZZ_SEED=<int> to explore other cases.
"""

import os
import re
import subprocess
import sys
import textwrap
from collections import Counter

from hypothesis import HealthCheck, assume, event, given, seed, settings
from spec_mutations import (
    BASE_SPECS,
    MUTATION_KINDS,
    mutants,
    resolve_field_path,
)

from tao_qat.spec.loader import SPEC_KINDS, load_spec

VALIDATE_CASES, TRAIN_CASES = 500, 50
FUZZ_SEED = os.environ.get("QAT_FUZZ_SEED")
FUZZ_PROFILE = f"seed={FUZZ_SEED}" if FUZZ_SEED else "derandomize=True (seed from test name)"
EXPERIMENT_BASES = [p for p in BASE_SPECS if load_spec(p, validate=False)[0] == "experiment"]


def fuzz_settings(max_examples):
    """Hypothesis settings for CI: reproducible, no example database, no time limit."""
    decorate = settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=FUZZ_SEED is None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    if FUZZ_SEED is None:
        return decorate
    return lambda test: seed(int(FUZZ_SEED))(decorate(test))


def _error_message(err, command):
    """The message of the last stderr line ``qat <command>: error: <message>``."""
    prefix = f"qat {command}: error: "
    last = err.splitlines()[-1]
    assert last.startswith(prefix), err
    return last[len(prefix) :]


def check_error_location(message, spec_path, mutant, detail_lines, kind=None):
    """Assert ``message`` names file:line:col, a field path or the bad byte of ``spec_path``.

    Args:
        message: the one-line error; detail_lines: the lines printed before it (validation
            errors, one per rule); kind: spec kind for resolving field paths (None: detected).
    """
    source = str(spec_path)
    text_lines = mutant.data.count(b"\n") + 1
    assert message.startswith(f"{source}:"), message
    rest = message[len(source) :]
    if located := re.match(r"^:(\d+):(\d+): \S", rest):
        line, column = int(located[1]), int(located[2])
        assert 1 <= line <= text_lines and column >= 1, message
        if mutant.line is not None:
            assert line == mutant.line, (message, mutant.line)
        assert not detail_lines, detail_lines
        return "file:line:col"
    if counted := re.match(r"^: invalid (\w+) spec \((\d+) errors?\)$", rest):
        assert mutant.line is None, message  # a certain syntax error must not get this far
        assert int(counted[2]) == len(detail_lines) >= 1, (message, detail_lines)
        for detail in detail_lines:
            check_field_path_line(detail, source, kind or counted[1])
        return "field path"
    if located := re.match(r"^: not a UTF-8 text file \(byte (\d+)\)$", rest):
        assert mutant.byte is None or int(located[1]) == mutant.byte, (message, mutant.byte)
        return "byte offset"
    if re.match(r"^: spec sets no fields, cannot tell its kind \(pass --kind [\w|]+\)$", rest):
        assert mutant.line is None and mutant.byte is None, message
        return "empty spec"
    if kind is not None and mutant.line is None and re.match(r"^: \S", rest):
        check_field_path_line(message, source, kind)  # train: first validation error
        return "field path"
    raise AssertionError(f"error names neither file:line:col nor a field path: {message}")


def check_field_path_line(line, source, kind):
    """Assert ``line`` is ``<source>: <field path that exists in kind>: <rule>``."""
    assert line.startswith(f"{source}: "), line
    field_path, sep, rule = line[len(source) + 2 :].partition(": ")
    assert sep and rule.strip(), line
    assert resolve_field_path(kind, field_path), f"not a field path of {kind}: {line}"


def test_base_specs_are_valid(run_qat):
    """The properties below start from valid specs: check they are (exit 0, no stderr)."""
    assert len(BASE_SPECS) >= 7 and len(EXPERIMENT_BASES) >= 3
    for path in BASE_SPECS:
        code, out, err = run_qat("validate_spec", "-e", path)
        assert (code, err) == (0, ""), path
        assert out.startswith(f"{path}: valid ")


def _report(capsys, text):
    """Print one summary line to the terminal (outside the captured CLI output)."""
    with capsys.disabled():
        print(f"\n{text}")


def test_validate_spec_on_mutated_specs(run_qat, tmp_path, capsys):
    spec_path = tmp_path / "spec.txt"
    seen, outcomes = Counter(), Counter()

    @fuzz_settings(VALIDATE_CASES)
    @given(mutant=mutants)
    def check(mutant):
        spec_path.write_bytes(mutant.data)
        code, out, err = run_qat("validate_spec", "-e", spec_path)
        seen[mutant.kind] += 1
        event(f"{mutant.kind}: exit {code}")
        assert "Traceback" not in err and "internal error" not in err, err
        if mutant.must_fail:
            assert code != 0, (mutant.kind, out)
        if code == 0:
            assert err == "" and out.startswith(f"{spec_path}: valid "), (out, err)
            outcomes["still valid"] += 1
            return
        assert code == 1 and out == "", (code, out)
        *details, _ = err.splitlines()
        outcomes[
            check_error_location(_error_message(err, "validate_spec"), spec_path, mutant, details)
        ] += 1

    check()
    _report(
        capsys,
        f"spec fuzz (hypothesis {FUZZ_PROFILE}): validate_spec cases per mutation "
        f"{dict(seen)}; outcomes {dict(outcomes)}",
    )
    assert sum(seen.values()) >= VALIDATE_CASES
    assert set(seen) == set(MUTATION_KINDS)
    assert outcomes["file:line:col"] and outcomes["field path"] and outcomes["byte offset"]


def test_train_on_mutated_specs_fails_like_validate_spec(run_qat, tmp_path, capsys):
    spec_path, results = tmp_path / "spec.txt", tmp_path / "results"
    experiment_mutants = mutants.filter(lambda m: m.base in EXPERIMENT_BASES)
    ran = Counter()

    @fuzz_settings(TRAIN_CASES)
    @given(mutant=experiment_mutants)
    def check(mutant):
        spec_path.write_bytes(mutant.data)
        code, _, err = run_qat("validate_spec", "-e", spec_path, "--kind", "experiment")
        assume(code != 0)  # a spec that still validates would start a training run
        expected = _error_message(err, "validate_spec")
        details = err.splitlines()[:-1]
        code_train, out, err_train = run_qat("train", "-e", spec_path, "-r", results)
        ran[mutant.kind] += 1
        assert "Traceback" not in err_train and "internal error" not in err_train, err_train
        assert (code_train, out) == (code, ""), (code_train, out, err_train)
        assert len(err_train.splitlines()) == 1, err_train
        message = _error_message(err_train, "train")
        if details:  # validation errors: train shows the first one and counts the others
            more = len(details) - 1
            suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
            assert message == details[0] + suffix
        else:
            assert message == expected
        check_error_location(message, spec_path, mutant, [], kind="experiment")
        assert not results.exists()  # nothing written before the spec is accepted

    check()
    _report(capsys, f"spec fuzz (hypothesis {FUZZ_PROFILE}): train cases per mutation {dict(ran)}")
    assert sum(ran.values()) >= TRAIN_CASES


def test_train_rejects_a_bad_spec_before_importing_tensorflow(tmp_path):
    spec = tmp_path / "spec.txt"
    spec.write_text("random_seed: 1\nmodel_config {\n  arch: 7\n}\n")
    script = textwrap.dedent(f"""
        import sys
        from tao_qat.cli.main import main
        code = main(["train", "-e", {str(spec)!r}, "-r", {str(tmp_path / "out")!r}])
        print(code, "tensorflow" in sys.modules)
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.split() == ["1", "False"], done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        f"qat train: error: {spec}:3:9: Expected string but found: '7'"
    ]


def test_field_path_resolver():
    # The checker used above must accept real paths and reject made-up ones.
    assert resolve_field_path(
        "experiment", "training_config.learning_rate.soft_start_annealing_schedule.soft_start"
    )
    assert resolve_field_path(
        "experiment",
        'postprocessing_config.target_class_config["car"].clustering_config.dbscan_eps',
    )
    assert resolve_field_path("experiment", "cost_function_config.target_classes[0].name")
    assert not resolve_field_path("experiment", "training_config.no_such_field")
    assert not resolve_field_path("experiment", "random_seed.value")
    assert set(SPEC_KINDS) == {"experiment", "dataset_export", "inference"}
