"""Progress display: the exact non-TTY line format and rules, the tqdm bar, the Keras callback."""

import io

import pytest
from tiny_keras import tiny_dataset, tiny_model

from tao_qat.common.progress import Progress, format_duration, format_value
from tao_qat.common.tensorflow_setup import keras
from tao_qat.training.progress import ProgressCallback
from tao_qat.training.schedules import SoftStartAnnealingSchedule


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_formatting_helpers():
    assert format_duration(3725.4) == "1:02:05"
    assert format_duration(None) == "--:--:--"
    assert format_value("lr", 0.0005) == "5.000e-04"
    assert format_value("loss", 0.012345678) == "0.01235"
    assert format_value("loss", 123.456) == "123.5"
    assert format_value("images", 7) == "7"


def test_non_tty_lines_every_30_seconds_and_at_the_end():
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(100, "epoch 3/120", stream=stream, tty=False, clock=clock)
    for _ in range(40):  # 40 steps of 0.5 s, 4 images each
        clock.now += 0.5
        progress.update(items=4, loss=0.012345, lr=5e-4)
    assert stream.getvalue() == ""  # only 20 s so far
    for _ in range(20):  # t = 30 s at step 60
        clock.now += 0.5
        progress.update(items=4, loss=0.01, lr=lambda: 2.5e-4)
    # 60 steps, 240 images in 30 s -> 8 images/s; eta = 40 steps * 0.5 s = 20 s
    assert stream.getvalue() == (
        "epoch 3/120 step 60/100 (60%) loss 0.01 lr 2.500e-04 | "
        "8 images/s | elapsed 0:00:30 eta 0:00:20\n"
    )
    for _ in range(40):
        clock.now += 0.5
        progress.update(items=4, loss=0.009)
    progress.close()
    progress.close()  # idempotent
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # the 100th step is reported by close(), not twice
    assert lines[1] == (
        "epoch 3/120 step 100/100 (100%) loss 0.009 lr 2.500e-04 | 8 images/s "
        "| elapsed 0:00:50 eta 0:00:00"
    )


def test_non_tty_every_steps_and_unknown_total():
    stream, clock = io.StringIO(), FakeClock()
    with Progress(
        None, "inference", stream=stream, tty=False, every_steps=2, every_seconds=None, clock=clock
    ) as progress:
        for _ in range(5):
            clock.now += 1.0
            progress.update(items=1)
    assert stream.getvalue().splitlines() == [
        "inference step 2 | 1 images/s | elapsed 0:00:02",
        "inference step 4 | 1 images/s | elapsed 0:00:04",
        "inference step 5 | 1 images/s | elapsed 0:00:05",
    ]


def test_tty_mode_draws_a_tqdm_bar_with_the_fields():
    stream = io.StringIO()
    with Progress(4, "evaluate", stream=stream, tty=True) as progress:
        for _ in range(4):
            progress.update(items=2, loss=0.5)
    text = stream.getvalue()
    assert "evaluate" in text and "4/4" in text and "loss 0.5" in text and "images/s" in text
    assert "\r" in text  # redrawn in place


def test_callback_reports_loss_and_scheduled_lr_per_line():
    # 4 steps/epoch, 2 epochs, lines every 2 steps; lr of the latest step from the schedule:
    # soft start over 8 steps (soft_start 1.0): lr(s) = 10**(-6 + 4 s/8).
    schedule = SoftStartAnnealingSchedule(1e-6, 1e-2, 1.0, 1.0, total_steps=8)
    model = tiny_model()
    model.compile(keras.optimizers.Adam(schedule), loss="mse")
    stream = io.StringIO()
    callback = ProgressCallback(
        4, 2, global_batch_size=4, stream=stream, tty=False, every_steps=2, every_seconds=None
    )
    model.fit(tiny_dataset(4), epochs=2, verbose=0, callbacks=[callback])
    lines = stream.getvalue().splitlines()
    assert [line.split(" loss")[0] for line in lines] == [
        "epoch 1/2 step 2/4 (50%)",
        "epoch 1/2 step 4/4 (100%)",
        "epoch 2/2 step 2/4 (50%)",
        "epoch 2/2 step 4/4 (100%)",
    ]
    # latest steps 1, 3, 5, 7 -> 1e-5.5, 1e-4.5, 1e-3.5, 1e-2.5
    rates = [float(line.split(" lr ")[1].split()[0]) for line in lines]
    assert rates == pytest.approx([10**-5.5, 10**-4.5, 10**-3.5, 10**-2.5], rel=1e-3)
    assert all("images/s" in line for line in lines)
    assert callback.last_epoch_images_per_second > 0
