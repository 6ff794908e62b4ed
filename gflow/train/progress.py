"""The progress line: step, loss (in the model's unit), steps/s and ETA."""

import datetime
import time

__all__ = ["Progress"]


class Progress:
  """Measures steps/s between reports and estimates the time left."""

  def __init__(self, start_step, total_steps):
    self.total = total_steps
    self.start = start_step
    self._last_step = start_step
    self._last_time = time.perf_counter()
    self.steps_per_sec = 0.0

  def restart(self, step):
    """Measures from `step` on (after the first, compiling step); returns the seconds
    since the last mark."""
    now = time.perf_counter()
    elapsed = now - self._last_time
    self._last_step, self._last_time = step, now
    return elapsed

  def line(self, step, metrics):
    now = time.perf_counter()
    if step > self._last_step:
      self.steps_per_sec = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_step, self._last_time = step, now
    if self.steps_per_sec:
      eta = datetime.timedelta(seconds=int((self.total - step) / self.steps_per_sec))
    else:
      eta = "-" if step < self.total else datetime.timedelta(0)
    parts = [f"step {step:>{len(str(self.total))}}/{self.total}"]
    parts += [f"{k} {v:.4f}" for k, v in metrics.items()]
    parts += [f"{self.steps_per_sec:.1f} steps/s", f"ETA {eta}"]
    return " | ".join(parts)
