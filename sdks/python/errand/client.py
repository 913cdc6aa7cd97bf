"""Submitting tasks and reading them back: the other half of errand's API, for Python.

Synchronous on purpose (`httpx.Client`): a client submits from request handlers, scripts and
notebooks. `wait` long-polls (`GET /v1/tasks/{id}?wait=`), so it costs one request per 30 s
of waiting, not a poll loop.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import httpx

from . import schema
from ._http import _headers, _retry_after, raise_for

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


class Client:
    """errand's task API: `submit`, `get`, `wait`, `cancel`, `retry`.

    Refusals raise `ErrandError` (its `field` names the field a 422 is about); 503s and
    transport errors are retried `retries` times with backoff (honouring `Retry-After`).
    """

    def __init__(self, url: str | None = None, *, api_key: str | None = None,
                 timeout: float = 30.0, retries: int = 5):
        self.url = (url or os.environ.get("ERRAND_URL", "http://localhost:8080")).rstrip("/")
        key = api_key if api_key is not None else os.environ.get("ERRAND_API_KEY")
        self.retries = retries
        self.http = httpx.Client(base_url=self.url, headers=_headers(key),
                                 timeout=httpx.Timeout(timeout, connect=5.0))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _request(self, method: str, path: str, what: str, **kw: Any) -> httpx.Response:
        delay = 0.1
        for attempt in range(self.retries + 1):
            res = None
            try:
                res = self.http.request(method, path, **kw)
                if res.status_code not in (502, 503, 504):
                    break
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
            if attempt < self.retries:
                time.sleep(_retry_after(res, delay) * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 5.0)
        assert res is not None
        if res.status_code >= 400:
            raise_for(res, what)
        return res

    def submit(self, kind: str, payload: Any = None, *, queue: str | None = None,
               id: str | None = None, max_attempts: int | None = None,
               timeout_secs: int | None = None, delay_secs: int | None = None,
               run_at: str | None = None, result_ttl_secs: int | None = None,
               callback: dict | None = None, unique_key: str | None = None,
               unique_for_secs: int | None = None, priority: int | None = None,
               concurrency_key: str | None = None) -> dict:
        """Submits one task; answers its record (state `queued`, or `scheduled` with a
        delay). An `id` makes the submit idempotent; `unique_key` with `unique_for_secs`
        answers the task already holding the key in the queue, inside its window.
        `priority` (1 to 9, default 5) and `concurrency_key` are the queue's flow control
        (docs/flow-control.md)."""
        body: dict = {"kind": kind}
        if payload is not None:
            body["payload"] = schema.to_json(payload)
        for k, v in (("queue", queue), ("id", id), ("max_attempts", max_attempts),
                     ("timeout_secs", timeout_secs), ("delay_secs", delay_secs),
                     ("run_at", run_at), ("result_ttl_secs", result_ttl_secs),
                     ("callback", callback), ("unique_key", unique_key),
                     ("unique_for_secs", unique_for_secs), ("priority", priority),
                     ("concurrency_key", concurrency_key)):
            if v is not None:
                body[k] = v
        return self._request("POST", "/v1/tasks", f"submit {kind}", json=body).json()

    def submit_workflow(self, steps: list[dict], *, id: str | None = None,
                        result_ttl_secs: int | None = None) -> dict:
        """Submits a workflow (docs/workflows.md): `steps` as the API takes them, e.g.
        ``{"name": "b", "kind": "k", "after": ["a"], "on_failure": "fail"}``. Checked whole
        before anything is written; answers the workflow with its first steps queued."""
        body: dict = {"steps": [dict(s, payload=schema.to_json(s["payload"])) if "payload" in s
                                else s for s in steps]}
        if id is not None:
            body["id"] = id
        if result_ttl_secs is not None:
            body["result_ttl_secs"] = result_ttl_secs
        return self._request("POST", "/v1/workflows", "submit workflow", json=body).json()

    def workflow(self, workflow_id: str) -> dict:
        """The workflow: its state and each step's state, result or error."""
        return self._request("GET", f"/v1/workflows/{workflow_id}",
                             f"get workflow {workflow_id}").json()

    def wait_workflow(self, workflow_id: str, timeout: float = 60.0) -> dict:
        """The workflow once it has ended; `TimeoutError` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            w = self.workflow(workflow_id)
            if w.get("state") != "running":
                return w
            if time.monotonic() >= deadline:
                raise TimeoutError(f"workflow {workflow_id} still running after {timeout}s")
            time.sleep(0.1)

    def cancel_workflow(self, workflow_id: str) -> dict:
        """Cancels the workflow: steps not started never will, running ones are told to stop."""
        return self._request("POST", f"/v1/workflows/{workflow_id}/cancel",
                             f"cancel workflow {workflow_id}").json()

    def get(self, task_id: str) -> dict:
        """The task's record: state, attempt, progress, result or error."""
        return self._request("GET", f"/v1/tasks/{task_id}", f"get {task_id}").json()

    def wait(self, task_id: str, timeout: float = 60.0) -> dict:
        """The task's record once it is terminal; `TimeoutError` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            secs = max(0, min(30, int(left)))
            rec = self._request("GET", f"/v1/tasks/{task_id}", f"wait for {task_id}",
                                params={"wait": secs}, timeout=secs + 30.0).json()
            if rec.get("state") in TERMINAL:
                return rec
            if time.monotonic() >= deadline:
                raise TimeoutError(f"task {task_id} still {rec.get('state')} after {timeout}s")
            if secs == 0:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def cancel(self, task_id: str) -> dict:
        """Cancels a task: at once when it waits, at its worker's next heartbeat when it runs."""
        return self._request("POST", f"/v1/tasks/{task_id}/cancel", f"cancel {task_id}").json()

    def retry(self, task_id: str) -> dict:
        """Runs a failed or cancelled task again."""
        return self._request("POST", f"/v1/tasks/{task_id}/retry", f"retry {task_id}").json()
