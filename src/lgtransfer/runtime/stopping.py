"""Graceful stop: SIGINT and SIGTERM (Ctrl-C; how SLURM preempts a job or ends it at its time
limit) only raise a flag; the training loop looks at it at each step boundary, writes a resume
point and stops (`errors.Interrupted`).

`fault_point` is the hook the fault-injection tests use: with LGT_FAULT=PLACE:STEP:SIGNAL in the
environment, the process sends itself SIGNAL when it reaches PLACE at STEP. The places: `step`
(after a training step), `mid_step` (between the optimizer's step and the schedule's), `eval` and
`eval_written` (before and after appending evaluation rows), `checkpoint` (halfway through
writing one), `resume` (before the resume point replaces the last), `finish` (before the
manifest says complete), `report` (before `lgt run` writes the report; step 0) and
`write_NAME` (step 0: the first atomic write of a file NAME, between writing its temporary file
and renaming it into place).
PLACE:STEP:SIGNAL:parent signals the parent process instead (a sweep's, as SLURM signals a
job's main process); PLACE:STEP:SIGNAL:group, the whole process group (as Ctrl-C does).
PLACE#N:STEP:SIGNAL fires only the Nth time this process reaches PLACE at STEP (in an inline
sweep, the Nth run: a kill that lands mid-sweep without any waiting).
SIGNAL `ENOSPC` raises the error a full disk gives (at `checkpoint`, `resume`, `eval` and
`write_NAME`). Without LGT_FAULT (always, outside tests) it does nothing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading
from collections.abc import Callable, Iterator

SIGNALS = [signal.SIGINT, signal.SIGTERM]  # a submitit job adds SIGUSR2 (`executors.TrainJob`)
_received: list[int] = []  # the signal that asked this process to stop, if any
_reached: dict[tuple[str, int], int] = {}  # times each fault point was reached (PLACE#N)
_depth = [0]  # nesting of `stop_at_step_boundaries` (a sweep's around each run's own)


def requested() -> int | None:
    """The signal number a stop was requested with, or None."""
    return _received[0] if _received else None


@contextlib.contextmanager
def stop_at_step_boundaries(on_signal: Callable[[int], None] | None = None) -> Iterator[None]:
    """While inside, SIGINT / SIGTERM request a stop instead of killing the process (and call
    `on_signal` the first time: a sweep forwards the stop to its worker processes). Repeated
    signals while stopping change nothing: a stop only writes one resume point. Nested (the
    inline sweep around each run), the request stays until the outermost one ends, so a signal
    during one run's last step stops the sweep before the next run."""
    if threading.current_thread() is not threading.main_thread():  # handlers need the main one
        yield
        return
    if _depth[0] == 0:
        _received.clear()

    def handler(signum: int, frame: object) -> None:
        first = not _received
        _received.append(signum)
        if first and on_signal is not None:
            on_signal(signum)

    old = {s: signal.signal(s, handler) for s in SIGNALS}
    _depth[0] += 1
    try:
        yield
    finally:
        _depth[0] -= 1
        for s, h in old.items():
            signal.signal(s, h)


def fault_point(place: str, step: int, path: str | None = None) -> None:
    """Send this process the signal LGT_FAULT names when it reaches `place` at `step` (for
    ENOSPC: raise it, naming `path`, the file being written, when given)."""
    spec = os.environ.get("LGT_FAULT")
    if not spec:
        return
    where, at, name, *whom = spec.split(":")
    where, _, nth = where.partition("#")
    if where != place or int(at) != step:
        return
    _reached[place, step] = _reached.get((place, step), 0) + 1
    if nth and _reached[place, step] != int(nth):
        return
    if name == "ENOSPC":  # a full disk at this write
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path or place)
    sig = getattr(signal, name)
    if whom == ["group"]:  # every process of this one's group, as Ctrl-C in a terminal does
        os.killpg(os.getpgrp(), sig)
    else:
        os.kill(os.getppid() if whom == ["parent"] else os.getpid(), sig)
