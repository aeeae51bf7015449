"""``kill -9`` of ``qat train`` at random moments, then re-running the same command.

Ten trials on one results folder, in an order drawn from a seeded RNG (``QAT_KILL_SEED``, the
seed is printed): kills at a random time after launch (start-up, restore, tracing, training,
saving), while a ``.model.epoch-<E>.hdf5`` temp file is being written, while a
``checkpoints/.tmp-epoch-<E>-*`` folder is being written, right after an epoch's status line
(before its checkpoint), and while an old checkpoint is being pruned. After every kill, every
file under a final name is complete; every re-run resumes from the newest complete checkpoint;
the last re-run finishes with a loadable model and a status.json listing every epoch once.
"""

import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from reliability_helpers import (
    QAT_ENV,
    assert_model_loads,
    check_results_complete,
    qat_command,
    status_epochs,
    status_lines,
    temp_files,
    tiny_project,
)

from tao_qat.training.checkpoints import find_latest_checkpoint

SEED = int(os.environ.get("QAT_KILL_SEED", "20260611"))
EPOCHS = 24
# Kill moments; "random" is a delay after launch, the others watch the results folder.
MODES = ["random"] * 4 + ["hdf5_temp"] * 2 + ["ckpt_temp"] * 2 + ["status_line", "prune"]
RANDOM_DELAY = (1.0, 17.0)  # s after launch; start-up to the first checkpoint takes 11-16 s here
MAX_NEW_EPOCHS = 3  # a random kill comes at the latest after 3 new epochs (0.3-1 s each)
TRIAL_TIMEOUT = 120.0


@dataclass
class Trial:
    mode: str
    start_epoch: int  # newest complete checkpoint before the run (0: none)
    killed: bool = False
    detail: str = ""
    seconds: float = 0.0
    output: str = ""
    temps_after_kill: list = field(default_factory=list)


def _hidden(folder, prefix):
    try:
        return {e.name for e in os.scandir(folder) if e.name.startswith(prefix)}
    except FileNotFoundError:
        return set()


def _stat(path):
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _kill_condition(mode, results, start_epoch, rng):
    """A function of (elapsed seconds) -> description when it is time to kill, else None.

    Leftovers of the previous killed run (temp files, status lines of epochs after its newest
    checkpoint) are there at launch: only what appears or changes after launch counts.
    """
    checkpoints, status = results / "checkpoints", results / "status.json"
    status_at_launch = _stat(status)

    def appended_epochs():
        if _stat(status) == status_at_launch:
            return []
        try:
            return [e for e in status_epochs(results) if e > start_epoch]
        except (AssertionError, ValueError):  # a line being appended right now
            return []

    if mode == "random":
        delay = rng.uniform(*RANDOM_DELAY)

        def at_random(elapsed):
            if elapsed >= delay:
                return f"{delay:.2f} s after launch"
            if len(appended_epochs()) >= MAX_NEW_EPOCHS:  # so training never ends in a trial
                return f"{MAX_NEW_EPOCHS} epochs done before {delay:.2f} s"
            return None

        return at_random
    if mode in ("hdf5_temp", "ckpt_temp"):
        folder, prefix = (
            (results, ".model.epoch-") if mode == "hdf5_temp" else (checkpoints, ".tmp-epoch-")
        )
        old, seen = _hidden(folder, prefix), set()
        nth = rng.choice([1, 2])  # the first or second checkpoint write of this run

        def during_write(_):
            current = _hidden(folder, prefix) - old
            seen.update(current)
            if current and len(seen) >= nth:
                return f"writing {sorted(current)[0]} (write {nth})"
            return None

        return during_write
    if mode == "status_line":

        def after_status_line(_):
            epochs = appended_epochs()
            return f"status line of epoch {epochs[0]} written" if epochs else None

        return after_status_line
    if mode == "prune":
        old_trash = _hidden(checkpoints, ".trash-")

        def during_prune(_):
            if _hidden(checkpoints, ".trash-") - old_trash:
                return "pruning an old checkpoint"
            if len(appended_epochs()) >= 3:
                return "pruning not caught; 3 epochs done"
            return None

        return during_prune
    raise ValueError(mode)


def run_and_kill(command, results, mode, rng):
    """Start ``command``, SIGKILL its process group when ``mode`` says; return the Trial."""
    latest = find_latest_checkpoint(results)
    trial = Trial(mode, latest.epoch if latest else 0)
    condition = _kill_condition(mode, results, trial.start_epoch, rng)
    start = time.monotonic()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=QAT_ENV,
    )
    try:
        while process.poll() is None:
            elapsed = time.monotonic() - start
            detail = condition(elapsed)
            if detail:
                os.killpg(process.pid, signal.SIGKILL)
                trial.killed, trial.detail = True, detail
                break
            assert elapsed < TRIAL_TIMEOUT, f"{mode}: no kill moment within {TRIAL_TIMEOUT} s"
            time.sleep(0.002)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        trial.output = process.communicate()[0].decode(errors="replace")
    trial.seconds = time.monotonic() - start
    trial.temps_after_kill = temp_files(results)
    return trial


def resumed_epoch(output):
    """The epoch a run said it resumed from (0: it started fresh), or None if it said nothing."""
    if "Resuming from epoch " in output:
        return int(output.split("Resuming from epoch ")[1].split()[0])
    if "Training " in output:
        return 0
    return None


@pytest.mark.slow
def test_kill_9_at_random_moments_then_rerun_resumes(tmp_path):
    print(f"\nkill -9 trials of qat train: seed {SEED} (set QAT_KILL_SEED to change)")
    rng = random.Random(SEED)
    modes = list(MODES)
    rng.shuffle(modes)
    spec = tiny_project(tmp_path, epochs=EPOCHS)
    results = tmp_path / "results"
    command = qat_command("train", "-e", spec, "-r", results)
    verified, trials = {}, []
    for number, mode in enumerate(modes, 1):
        trial = run_and_kill(command, results, mode, rng)
        trials.append(trial)
        print(
            f"trial {number:2d} {mode:11s} from epoch {trial.start_epoch:2d}: killed "
            f"{trial.detail} at {trial.seconds:.1f} s; temp files {trial.temps_after_kill}"
        )
        where = f"trial {number} ({mode}, seed {SEED})"
        assert trial.killed, f"{where}: the run ended by itself:\n{trial.output[-2000:]}"
        assert "Traceback" not in trial.output, f"{where}:\n{trial.output[-2000:]}"
        said = resumed_epoch(trial.output)
        assert said in (None, trial.start_epoch), f"{where}: resumed from {said}"
        verified = check_results_complete(results, verified)
        assert not (results / "weights" / "model.hdf5").exists()
    # The watched kills did land inside writes: a temp file of the killed write is still there.
    assert any(
        ".model.epoch-" in " ".join(t.temps_after_kill) for t in trials if t.mode == "hdf5_temp"
    ), [t.temps_after_kill for t in trials]
    assert any(
        "checkpoints/.tmp-epoch-" in " ".join(t.temps_after_kill)
        for t in trials
        if t.mode == "ckpt_temp"
    ), [t.temps_after_kill for t in trials]

    latest = find_latest_checkpoint(results)
    start_epoch = latest.epoch if latest else 0
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600, env=QAT_ENV)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert resumed_epoch(rerun.stdout) == start_epoch
    assert f"epochs {start_epoch + 1}..{EPOCHS}" in rerun.stdout
    print(f"final run resumed from epoch {start_epoch} and finished epoch {EPOCHS}")
    # Every epoch once, in order, then SUCCESS; nothing half-written anywhere.
    assert status_epochs(results) == list(range(1, EPOCHS + 1))
    assert status_lines(results)[-1]["status"] == "SUCCESS"
    assert temp_files(results) == []
    check_results_complete(results, verified, load=False)
    assert_model_loads(Path(results) / "weights" / "model.hdf5")
    assert find_latest_checkpoint(results).epoch == EPOCHS
