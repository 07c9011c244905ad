"""The run folder: its name, an exclusive lock for the run's lifetime, and the leftovers of a run
that died before its first checkpoint.

The lock is an advisory `flock` on RUN/.lock: the kernel releases it when the process ends in any way
(SIGKILL included), so a dead run never leaves a stale lock behind; the file only records who held it.
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from pathlib import Path

from ..errors import ReslabError

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"
MARKER = ".reslab-run"  # written by a run that claims a folder: proof that the outputs below are reslab's
# What a run writes into its folder before its first checkpoint.
RUN_OUTPUTS = ("metrics.jsonl", "tensorboard", "summary.json", "curves.png", "config.yaml")


_HELD: set[int] = set()  # descriptors of the locks this process holds


def _drop_in_child() -> None:
    """A forked child (a DataLoader worker) must not keep the run's lock alive after its parent dies:
    it closes its copy of the descriptor (the parent's lock stays, as flock belongs to the open file)."""
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_drop_in_child)


class RunLock:
    """Held while a run writes into its folder; a second run on the same folder is refused."""

    def __init__(self, directory: Path) -> None:
        self._fd: int | None = None
        self.path = directory / LOCK_NAME
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ReslabError(f"cannot write the run folder {directory}: {e.strerror or e} (choose a writable --out "
                              f"or --name)") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(self._fd)
            self._fd = None
            raise ReslabError(f"run folder {directory} is in use by {holder}: wait for it to finish, or choose "
                              f"another --name") from None
        _HELD.add(self._fd)
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"pid {os.getpid()} on {os.uname().nodename} since {time.strftime('%H:%M:%S')}".encode(), 0)

    def __del__(self) -> None:
        self.release()

    def release(self) -> None:
        if self._fd is not None and self._fd in _HELD:
            _HELD.discard(self._fd)
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
        self._fd = None


def run_name(model: str, data_name: str, given: str = "") -> str:
    return given or f"{model}-{data_name}-{time.strftime('%Y%m%d-%H%M%S')}"


def claim_new_run_dir(path: Path) -> RunLock:
    """Lock `path` for a new run. A folder with checkpoints is refused (resume it instead). Outputs of an
    earlier reslab run that died before its first checkpoint are removed, so nothing is appended to them;
    files of those names that reslab did not write (no run marker) are never touched: the run is refused."""
    lock = RunLock(path)
    try:
        if (path / "checkpoints").exists():
            raise ReslabError(f"run folder {path} already has checkpoints: pass --resume {path} to continue it, "
                              f"or choose another --name")
        present = [n for n in RUN_OUTPUTS if (path / n).exists()]
        if present and not (path / MARKER).is_file():
            raise ReslabError(f"{path} holds {', '.join(present)}, which no reslab run wrote there: choose another "
                              f"--name (reslab does not delete files it did not write)")
        if present:
            log.info("%s holds the outputs of a run that stopped before its first checkpoint: starting afresh", path)
            for n in present:
                shutil.rmtree(path / n) if (path / n).is_dir() else (path / n).unlink()
        (path / MARKER).write_text("a reslab run folder: reslab may replace its own outputs here\n")
    except OSError as e:
        lock.release()
        raise ReslabError(f"cannot write the run folder {path}: {e.strerror or e}") from None
    except BaseException:
        lock.release()
        raise
    return lock
