"""Stop signals as a request to stop after the current step, not an abort.

Ctrl-C (SIGINT) and SIGTERM (what schedulers send before killing a job) set a
flag that the training loop checks after every step: it saves a checkpoint and
ends with `TrainingInterrupted`, and the same command resumes. A second signal
while stopping aborts at once (KeyboardInterrupt), for a user who cannot wait.
"""

import signal
import threading

__all__ = ["StopRequests", "TrainingInterrupted"]


class TrainingInterrupted(Exception):
  """Training stopped at a signal after saving a checkpoint; `exit_code` is 128 + signal."""

  def __init__(self, signum, message):
    super().__init__(message)
    self.signum = signum
    self.exit_code = 128 + signum


class StopRequests:
  """While active (a `with` block, main thread only), SIGINT and SIGTERM set
  `signum` instead of ending the process."""

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self):
    self.signum = None
    self._previous = {}

  def _handle(self, signum, frame):
    if self.signum is not None:
      raise KeyboardInterrupt
    self.signum = signum
    print(f"\n{signal.Signals(signum).name}: stopping after this step (a checkpoint will be "
          "saved; send it again to abort at once).", flush=True)

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for s in self.SIGNALS:
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    self._previous = {}
    return False
