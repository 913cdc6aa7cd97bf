"""What a task raises to say how its attempt ended, and what the SDK raises to its caller.

A task that returns succeeded. Anything it raises fails the attempt; these three say how:
`Retry` asks for another attempt (after a delay of its choosing), `Fail` forbids one, and
`Cancelled` ends the task as cancelled (what `Context.raise_if_cancelled` raises once a
client asked). Any other exception is a retryable failure named after its class.
"""

from __future__ import annotations


class Retry(Exception):
    """Fail this attempt and run the task again after `in_secs` (default: errand's backoff).

    Retried while attempts remain (`max_attempts` at submit); the last attempt's `Retry`
    ends the task `failed`.
    """

    def __init__(self, message: str = "retry requested", *, in_secs: float | None = None,
                 kind: str = "retry"):
        super().__init__(message)
        self.message = message
        self.in_secs = in_secs
        self.kind = kind


class Fail(Exception):
    """Fail the task for good: no further attempt, whatever `max_attempts` allows."""

    def __init__(self, message: str, *, kind: str = "failed"):
        super().__init__(message)
        self.message = message
        self.kind = kind


class Cancelled(Exception):
    """The task stops because a client cancelled it; it is recorded `cancelled`."""

    def __init__(self, message: str = "cancelled"):
        super().__init__(message)
        self.message = message


class ErrandError(Exception):
    """errand answered something the SDK cannot go on from (a bad key, a refused registration).

    `status` is the HTTP status and `problem` the `application/problem+json` body, when
    there was one: its `field` names what was wrong.
    """

    def __init__(self, message: str, *, status: int | None = None,
                 problem: dict | None = None):
        super().__init__(message)
        self.status = status
        self.problem = problem or {}

    @property
    def field(self) -> str | None:
        return self.problem.get("field")
