"""One training run per workdir at a time: an advisory lock on `<workdir>/.lock`.

The lock is `flock(2)` on an open file, so the kernel releases it when the
process ends, however it ends: a killed run never leaves it stuck. The file
keeps the pid and host of the holder for the error message.
"""

import contextlib
import fcntl
import os
import socket

__all__ = ["WorkdirBusy", "workdir_lock"]

LOCK_FILE = ".lock"


class WorkdirBusy(RuntimeError):
  """Another process is training in this workdir."""


@contextlib.contextmanager
def workdir_lock(workdir):
  """Holds the workdir's lock for the `with` block; WorkdirBusy if another process
  holds it."""
  path = os.path.join(workdir, LOCK_FILE)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
      raise WorkdirBusy(
          f"{workdir} is in use: {holder} is training in it. Wait for it to finish "
          "(or stop it), or choose another --workdir.") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    yield
  finally:
    os.close(fd)  # releases the lock
