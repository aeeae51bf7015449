"""Learning-rate schedules: hand-computed values, serialization, spec builders, and the
trials.md pitfall (the rate must really change inside a tf_keras Adam during fit)."""

import math

import numpy as np
import pytest
from tiny_keras import tiny_dataset, tiny_model, weights_of

from tao_qat.common.errors import SpecError
from tao_qat.common.tensorflow_setup import keras
from tao_qat.spec.proto import learning_rate_config_pb2
from tao_qat.training.schedules import (
    CUSTOM_OBJECTS,
    EarlyStoppingAnnealingSchedule,
    EarlyStoppingController,
    SoftStartAnnealingSchedule,
    build_learning_rate_schedule,
    soft_start_annealing_factor,
)

# min 1e-6, max 1e-2: four decades, so lr = 10 ** (-6 + 4 t).
# soft_start 0.2, annealing 0.6, 100 steps:
#   step 0  p=0    t=0               -> 1e-6
#   step 10 p=0.1  t=0.1/0.2=0.5     -> 1e-4
#   step 20 p=0.2  (not < 0.2) t=1   -> 1e-2
#   step 60 p=0.6  (not > 0.6) t=1   -> 1e-2
#   step 70 p=0.7  t=0.3/0.4=0.75    -> 1e-3
#   step 80 p=0.8  t=0.2/0.4=0.5     -> 1e-4
#   step 100 p=1   t=0               -> 1e-6 ; step 150: p clamped to 1 -> 1e-6
SOFT_START_VALUES = [
    (0, 1e-6),
    (10, 1e-4),
    (20, 1e-2),
    (60, 1e-2),
    (70, 1e-3),
    (80, 1e-4),
    (100, 1e-6),
    (150, 1e-6),
]


def soft_start_config(min_lr=1e-6, max_lr=1e-2, soft_start=0.2, annealing=0.6):
    config = learning_rate_config_pb2.LearningRateConfig()
    schedule = config.soft_start_annealing_schedule
    schedule.min_learning_rate, schedule.max_learning_rate = min_lr, max_lr
    schedule.soft_start, schedule.annealing = soft_start, annealing
    return config


def early_stopping_config(soft_start_epochs=1, annealing_epochs=2, patience=2):
    config = learning_rate_config_pb2.LearningRateConfig()
    schedule = config.early_stopping_annealing_schedule
    schedule.min_learning_rate, schedule.max_learning_rate = 1e-6, 1e-2
    schedule.soft_start_epochs, schedule.annealing_epochs = soft_start_epochs, annealing_epochs
    schedule.patience_steps = patience
    return config


@pytest.mark.parametrize("step, expected", SOFT_START_VALUES)
def test_soft_start_annealing_values(step, expected):
    schedule = SoftStartAnnealingSchedule(1e-6, 1e-2, 0.2, 0.6, total_steps=100)
    assert float(schedule(step)) == pytest.approx(expected, rel=1e-6)
    assert schedule.value_at(step) == pytest.approx(expected, rel=1e-12)


def test_soft_start_edge_cases():
    # soft_start 0 and annealing 1: always max_lr.
    flat = SoftStartAnnealingSchedule(1e-6, 1e-2, 0.0, 1.0, total_steps=10)
    assert [float(flat(s)) for s in (0, 5, 10)] == pytest.approx([1e-2] * 3, rel=1e-6)
    # soft_start == annealing == 0.5: ramp up then straight down; step 75: t=0.25/0.5=0.5.
    peak = SoftStartAnnealingSchedule(1e-6, 1e-2, 0.5, 0.5, total_steps=100)
    assert [float(peak(s)) for s in (0, 50, 75, 100)] == pytest.approx(
        [1e-6, 1e-2, 1e-4, 1e-6], rel=1e-6
    )
    assert soft_start_annealing_factor(-0.5, 0.2, 0.6) == 0.0


def test_schedule_serialization_round_trip():
    schedule = SoftStartAnnealingSchedule(5e-6, 5e-4, 0.1, 0.7, total_steps=1200)
    config = keras.optimizers.schedules.serialize(schedule)
    rebuilt = keras.optimizers.schedules.deserialize(config, custom_objects=CUSTOM_OBJECTS)
    assert rebuilt.get_config() == schedule.get_config()
    assert float(rebuilt(600)) == pytest.approx(5e-4, rel=1e-6)
    early = EarlyStoppingAnnealingSchedule(1e-6, 1e-2, 10, 20, patience_epochs=2)
    again = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(early), custom_objects=CUSTOM_OBJECTS
    )
    assert again.get_config() == early.get_config()


def test_build_soft_start_from_spec():
    schedule = build_learning_rate_schedule(soft_start_config(), steps_per_epoch=10, num_epochs=10)
    assert isinstance(schedule, SoftStartAnnealingSchedule)
    assert schedule.total_steps == 100
    # proto floats are float32: compare loosely.
    assert schedule.value_at(70) == pytest.approx(1e-3, rel=1e-5)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"min_lr": 0.0}, "soft_start_annealing_schedule.min_learning_rate: must be > 0"),
        ({"soft_start": 0.8, "annealing": 0.6}, "soft_start: must be <= annealing"),
        ({"annealing": 1.5}, "annealing: must be in [0, 1]"),
    ],
)
def test_soft_start_spec_errors_name_the_field(kwargs, field):
    with pytest.raises(SpecError) as err:
        build_learning_rate_schedule(soft_start_config(**kwargs), 10, 10)
    assert str(err.value).startswith("training_config.learning_rate.")
    assert field in str(err.value)


def test_unset_schedule_is_a_spec_error():
    with pytest.raises(SpecError, match="set one of soft_start_annealing_schedule"):
        build_learning_rate_schedule(learning_rate_config_pb2.LearningRateConfig(), 10, 10)


def test_early_stopping_spec_cross_checks():
    with pytest.raises(SpecError, match="patience_steps: must be >= evaluation_config"):
        build_learning_rate_schedule(early_stopping_config(patience=2), 10, 10, validation_period=3)
    with pytest.raises(SpecError, match=r"must be <= training_config.num_epochs \(1\)"):
        build_learning_rate_schedule(early_stopping_config(patience=2), 10, 1)
    schedule = build_learning_rate_schedule(early_stopping_config(), 10, 10, 1)
    assert (schedule.soft_start_steps, schedule.annealing_steps) == (10, 20)


def test_early_stopping_controller_sequence_and_rates():
    # 10 steps/epoch, soft start 1 epoch (10 steps), annealing 2 epochs (20 steps), patience 2.
    schedule = EarlyStoppingAnnealingSchedule(1e-6, 1e-2, 10, 20, patience_epochs=2)
    ctl = schedule.controller
    # Soft start: step 5 -> t=0.5 -> 1e-4; step 10 and later -> max.
    assert float(schedule(5)) == pytest.approx(1e-4, rel=1e-6)
    assert float(schedule(35)) == pytest.approx(1e-2, rel=1e-6)
    decisions = [
        ctl.observe(1, 5.0, 10),  # first cost: best 5.0 @1
        ctl.observe(2, 4.0, 20),  # better: best 4.0 @2
        ctl.observe(3, 4.5, 30),  # 3-2=1 < 2
        ctl.observe(4, 4.2, 40),  # 4-2=2 >= 2, soft-start phase -> anneal from step 40
    ]
    assert decisions == ["improved", "improved", "waiting", "annealing_started"]
    assert int(ctl.phase_start_step.numpy()) == 40 and bool(ctl.in_annealing.numpy())
    # Annealing from step 40: step 45 t=1-5/20=0.75 -> 1e-3; step 60 t=0 -> 1e-6 (and after).
    assert float(schedule(40)) == pytest.approx(1e-2, rel=1e-6)
    assert float(schedule(45)) == pytest.approx(1e-3, rel=1e-6)
    assert float(schedule(60)) == pytest.approx(1e-6, rel=1e-6)
    assert float(schedule(90)) == pytest.approx(1e-6, rel=1e-6)
    assert schedule.value_at(45) == pytest.approx(1e-3, rel=1e-12)
    # Best reset to 4.2 @4 when annealing started.
    assert ctl.observe(5, 4.1, 50) == "improved"  # best 4.1 @5
    assert ctl.observe(6, 4.3, 60) == "waiting"  # 6-5=1
    assert not bool(ctl.should_stop.numpy())
    # 7-5=2 >= 2, annealing, 70-40=30 > 20 annealing steps -> stop.
    assert ctl.observe(7, 4.3, 70) == "stop"
    assert bool(ctl.should_stop.numpy())


def test_early_stopping_waits_until_annealing_finished():
    ctl = EarlyStoppingController(patience_epochs=1, annealing_steps=20)
    assert ctl.observe(1, 1.0, 10) == "improved"
    assert ctl.observe(2, 2.0, 20) == "annealing_started"  # phase starts at step 20
    # 3-2=1 >= 1 but only 10 steps (<= 20) into annealing: keep going.
    assert ctl.observe(3, 2.5, 30) == "waiting"
    assert ctl.observe(4, 2.5, 41) == "stop"  # 21 > 20


class _RecordRates(keras.callbacks.Callback):
    """Records optimizer.learning_rate (the rate the last update used) after every step."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append(float(self.model.optimizer.learning_rate))


def test_adam_really_follows_the_schedule_during_fit():
    # 4 batches per epoch, 2 epochs = 8 steps; soft start over the first half, anneal after 0.75.
    schedule = SoftStartAnnealingSchedule(1e-6, 1e-2, 0.5, 0.75, total_steps=8)
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")
    before = weights_of(model)
    recorder = _RecordRates()
    model.fit(tiny_dataset(4), epochs=1, verbose=0, callbacks=[recorder])
    model.fit(tiny_dataset(4), epochs=1, verbose=0, callbacks=[recorder])
    expected = [schedule.value_at(step) for step in range(8)]
    # steps 0..3: 10**(-6 + 4 * s/4) = 1e-6, 1e-5, 1e-4, 1e-3; 4..6: 1e-2; step 7: t=(1-7/8)/0.25
    # = 0.5 -> 1e-4.
    assert expected == pytest.approx([1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-2, 1e-2, 1e-4], rel=1e-9)
    assert recorder.rates == pytest.approx(expected, rel=1e-5)
    assert int(model.optimizer.iterations.numpy()) == 8
    assert any(not np.allclose(a, b) for a, b in zip(before, weights_of(model), strict=True))


def test_first_adam_step_moves_weights_by_the_scheduled_rate():
    # One update at step 0: each weight with |g| >> eps moves by exactly lr(0) (Adam's first
    # step is lr * g / |g|). soft_start 0.5 over 4 steps: lr(0) = min = 1e-3.
    schedule = SoftStartAnnealingSchedule(1e-3, 1e-1, 0.5, 1.0, total_steps=4)
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(schedule, epsilon=1e-12), loss="mse")
    before = weights_of(model)
    model.fit(tiny_dataset(16), epochs=1, verbose=0)  # a single batch of 16
    step = np.concatenate(
        [np.abs(a - b).ravel() for a, b in zip(before, weights_of(model), strict=True)]
    )
    assert np.median(step) == pytest.approx(1e-3, rel=1e-3)


def test_early_stopping_state_changes_are_seen_by_compiled_training():
    # The controller's variables are read inside the compiled train step: a Python-side
    # observe() between fits must change the rate used by later steps.
    schedule = EarlyStoppingAnnealingSchedule(1e-6, 1e-2, 0, 8, patience_epochs=1)
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")
    recorder = _RecordRates()
    model.fit(tiny_dataset(4), epochs=1, verbose=0, callbacks=[recorder])  # steps 0..3: max
    schedule.controller.observe(1, 1.0, 4)
    assert schedule.controller.observe(2, 1.5, 4) == "annealing_started"  # anneal from step 4
    model.fit(tiny_dataset(4), epochs=1, verbose=0, callbacks=[recorder])  # steps 4..7
    # annealing t = 1 - (s - 4)/8: 1, 0.875, 0.75, 0.625 -> 10**(-6 + 4t)
    expected = [1e-2] * 4 + [10 ** (-6 + 4 * (1 - k / 8)) for k in range(4)]
    assert recorder.rates == pytest.approx(expected, rel=1e-5)
    assert math.isclose(recorder.rates[6], 1e-3, rel_tol=1e-5)
