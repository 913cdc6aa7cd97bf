"""What a running task knows about its attempt, and how it talks back.

One `Context` per attempt. Progress is kept here and sent with a heartbeat: news of progress brings the next one
forward (to at most two a second), so calling `progress` in a tight loop costs nothing on
the wire and a client still sees it within half a second.
Cancellation is cooperative: the heartbeat sets `cancelled` when a client cancels, and
the task decides where it may stop (`raise_if_cancelled`, `sleep`). An async task is also
interrupted at its next `await`.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Callable

from .errors import Cancelled


@dataclass
class Context:
    """The attempt a task runs in."""

    task_id: str
    kind: str
    queue: str
    attempt: int
    max_attempts: int
    timeout_secs: int | None = None
    traceparent: str | None = None
    #: The workflow this task is a step of (docs/workflows.md); None outside one.
    workflow: str | None = None
    #: A workflow step's inputs: for each step it runs after, by name, that step's end
    #: (``{"id", "state", "result"}``, or ``"error"`` in place of ``"result"``).
    inputs: dict | None = None
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _progress: dict | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _news: Callable[[], None] | None = field(default=None, repr=False)

    def input(self, step: str):
        """The result of dependency `step` when it succeeded, else None."""
        end = (self.inputs or {}).get(step) or {}
        return end.get("result")

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    @property
    def cancelled(self) -> bool:
        """A client asked to cancel this task, or the worker no longer holds it."""
        return self._cancel.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise `Cancelled` once a cancel was requested: call it where stopping is safe."""
        if self._cancel.is_set():
            raise Cancelled("cancelled by request")

    def progress(self, percent: int | float, message: str | None = None) -> None:
        """Record how far the task is (0 to 100), shown on `GET /v1/tasks/{id}`."""
        p: dict = {"percent": max(0, min(100, int(percent)))}
        if message is not None:
            p["message"] = str(message)
        with self._lock:
            first = self._progress is None
            self._progress = p
        if first and self._news is not None:
            self._news()

    def sleep(self, secs: float) -> None:
        """Sleep in a sync task, waking at once (with `Cancelled`) if it is cancelled."""
        if self._cancel.wait(secs):
            raise Cancelled("cancelled by request")

    async def asleep(self, secs: float) -> None:
        """`asyncio.sleep`, waking at once (with `Cancelled`) if the task is cancelled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + secs
        while not self._cancel.is_set():
            left = deadline - loop.time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.05))
        raise Cancelled("cancelled by request")

    def _take_progress(self) -> dict | None:
        with self._lock:
            p, self._progress = self._progress, None
            return p
