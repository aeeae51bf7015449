"""Progress display for step loops (train epochs, evaluate, inference, export): bar or lines.

On a terminal a live tqdm bar shows ``<desc> step/total``, the caller's fields (loss, learning
rate, ...), items/s and the ETA. When the stream is not a terminal (a log file, CI, ``nohup``)
plain lines with the same fields are written every ``every_steps`` steps and/or every
``every_seconds`` seconds, and once when the loop finishes, e.g.::

    epoch 3/120 step 40/100 (40%) loss 0.01234 lr 5.000e-04 | 12.3 images/s | elapsed 0:00:12
    eta 0:00:18

(one line; wrapped here).

TensorFlow-free: the Keras callback that feeds it lives in ``tao_qat.training.progress``.
"""

import math
import sys
import time

from tqdm import tqdm

__all__ = ["Progress", "format_duration", "format_value"]

BAR_FIELDS_SECONDS = 0.5


def format_duration(seconds):
    """Format seconds as ``H:MM:SS`` (``--:--:--`` when unknown or infinite)."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "--:--:--"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def format_value(name, value):
    """Format one field: learning rates (name contains ``lr``) as ``5.000e-04``, other floats
    with 4 significant digits (``0.01234``, ``123.5``), everything else with ``str``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if "lr" in name.lower() or "learning_rate" in name.lower():
        return f"{value:.3e}"
    return f"{value:.4g}"


class Progress:
    """Progress of a loop of ``total`` steps, shown as a tqdm bar (TTY) or as periodic lines.

    Use as a context manager (or call ``close``)::

        with Progress(total=len(batches), desc="evaluate", items_name="images") as progress:
            for batch in batches:
                ...
                progress.update(items=len(batch), loss=cost)

    Args:
        total: number of steps expected (None if unknown: no percentage, no ETA).
        desc: prefix of every line / bar, e.g. ``"epoch 3/120"``.
        stream: text stream written to (default ``sys.stdout``).
        tty: force bar (True) or lines (False); default ``stream.isatty()``.
        every_steps: in line mode, also print when the step count is a multiple of this.
        every_seconds: in line mode, print when this many seconds passed since the last line
            (None or 0 disables the time rule).
        items_name: unit of the throughput, e.g. ``"images"`` (shown as ``images/s``).
        clock: monotonic time source in seconds (tests inject a fake one).
    """

    def __init__(
        self,
        total,
        desc="",
        *,
        stream=None,
        tty=None,
        every_steps=None,
        every_seconds=30.0,
        items_name="images",
        clock=time.monotonic,
    ):
        self.total = total
        self.desc = desc
        self.stream = stream if stream is not None else sys.stdout
        self.items_name = items_name
        self.every_steps = every_steps
        self.every_seconds = every_seconds
        self._clock = clock
        self._start = clock()
        self._last_line = self._start
        self.steps = 0
        self.items = 0
        self.fields = {}
        self._closed = False
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        self._bar = None
        if tty:
            self._bar = tqdm(
                total=total,
                desc=desc,
                file=self.stream,
                unit="step",
                dynamic_ncols=True,
                leave=True,
            )

    # ---- feeding -------------------------------------------------------------------------
    def update(self, steps=1, items=0, **fields):
        """Record ``steps`` finished steps that processed ``items`` items; set display fields.

        Field values may be numbers, strings or zero-argument callables (evaluated only when
        shown, so an expensive read such as the optimizer's learning rate costs nothing on
        steps that are not displayed).
        """
        self.steps += steps
        self.items += items
        self.fields.update(fields)
        now = self._clock()
        if self._bar is not None:
            # Fields (maybe costly callables) are re-read at most every BAR_FIELDS_SECONDS.
            if self._last_line == self._start or now - self._last_line >= BAR_FIELDS_SECONDS:
                self._last_line = now
                self._bar.set_postfix_str(self._postfix(), refresh=False)
            self._bar.update(steps)
            return
        due_steps = bool(self.every_steps) and self.steps % self.every_steps == 0
        due_time = bool(self.every_seconds) and now - self._last_line >= self.every_seconds
        finished = self.total is not None and self.steps >= self.total
        if (due_steps or due_time) and not finished:
            self._write_line(now)

    def close(self):
        """Finish: close the bar, or write the final line (line mode, if any step was made)."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(), refresh=True)
            self._bar.close()
        elif self.steps:
            self._write_line(self._clock())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # ---- derived numbers -----------------------------------------------------------------
    @property
    def elapsed(self):
        """Seconds since construction."""
        return self._clock() - self._start

    def items_per_second(self, now=None):
        """Items processed per second since construction (0.0 before any time has passed)."""
        elapsed = (self._clock() if now is None else now) - self._start
        return self.items / elapsed if elapsed > 0 else 0.0

    def eta_seconds(self, now=None):
        """Seconds left, extrapolating the mean step time (None if unknown)."""
        elapsed = (self._clock() if now is None else now) - self._start
        if self.total is None or self.steps == 0:
            return None
        return max(self.total - self.steps, 0) * elapsed / self.steps

    # ---- rendering -----------------------------------------------------------------------
    def _field_text(self):
        parts = []
        for name, value in self.fields.items():
            if callable(value):
                value = value()
            parts.append(f"{name} {format_value(name, value)}")
        return " ".join(parts)

    def _postfix(self):
        text = self._field_text()
        if self.items:
            rate = f"{self.items_per_second():.3g} {self.items_name}/s"
            text = f"{text} | {rate}" if text else rate
        return text

    def format_line(self, now=None):
        """The plain line for the current state (what line mode prints)."""
        now = self._clock() if now is None else now
        head = f"{self.desc} " if self.desc else ""
        if self.total is not None:
            percent = 100.0 * self.steps / self.total if self.total else 100.0
            head += f"step {self.steps}/{self.total} ({percent:.0f}%)"
        else:
            head += f"step {self.steps}"
        parts = [head + (f" {self._field_text()}" if self.fields else "")]
        if self.items:
            parts.append(f"{self.items_per_second(now):.3g} {self.items_name}/s")
        timing = f"elapsed {format_duration(now - self._start)}"
        if self.total is not None:
            timing += f" eta {format_duration(self.eta_seconds(now))}"
        parts.append(timing)
        return " | ".join(parts)

    def _write_line(self, now):
        self._last_line = now
        self.stream.write(self.format_line(now) + "\n")
        self.stream.flush()
