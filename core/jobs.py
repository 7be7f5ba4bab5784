"""Progress and cancel for long work.

Operators report fractions in [0, 1] through `Job.progress`; the same call is the cancel checkpoint, so a
cancel request takes effect at the next tile or step boundary. `Job.sub` maps a sub-task onto a slice of the
parent's range, so stages need not know where they sit in the whole.
"""
from __future__ import annotations

import threading
from typing import Callable, Optional

from .errors import Cancelled

ProgressCallback = Callable[[float, str], None]


class Job:
    def __init__(self, callback: Optional[ProgressCallback] = None,
                 cancel_event: Optional[threading.Event] = None,
                 start: float = 0.0, end: float = 1.0):
        self._callback = callback
        self.cancel_event = cancel_event if cancel_event is not None else threading.Event()
        self._start, self._end = start, end

    def check_cancel(self) -> None:
        if self.cancel_event.is_set():
            raise Cancelled("cancelled")

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress of this (sub-)job and raise Cancelled if a cancel was requested."""
        self.check_cancel()
        if self._callback is not None:
            f = min(max(float(fraction), 0.0), 1.0)
            self._callback(self._start + f * (self._end - self._start), message)

    def sub(self, start: float, end: float) -> "Job":
        """A child job whose [0, 1] maps onto [start, end] of this job's range."""
        span = self._end - self._start
        return Job(self._callback, self.cancel_event,
                   self._start + start * span, self._start + end * span)

    def cancel(self) -> None:
        self.cancel_event.set()


def silent() -> Job:
    return Job()
