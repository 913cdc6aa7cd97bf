"""A worker: the user's task functions run on errand's HTTP worker protocol.

Three loops share one event loop (docs/http-workers.md has the protocol):

- **lease**, one per queue: asks for as many tasks as the queue has free slots, long-polling
  (`wait_ms`) when none is ready, and starts each (async tasks on the loop, sync ones on
  the worker's threads);
- **heartbeat**: every `heartbeat_secs` (sooner, at most twice a second, when a task has
  news of progress), every held task with its progress. Its
  answer names tasks a client cancelled (their `Context` is flagged, async ones are
  interrupted) and tasks the worker no longer holds (`lost`: stopped and never reported,
  the report would be refused);
- **complete**: reports, batched (everything that finished while the last call was out goes
  in the next one, up to 1,000).

A task stays *held* (its slot taken, its lease renewed) until errand has recorded its report,
not merely until the function returns: a report that has to wait out an api restart or a
Redis failover must not let the lease lapse under it.

Stopping (SIGTERM, SIGINT or `stop()`): no new leases once the one in flight returns (its
tasks run: abandoning an answer would strand them until their lease lapses); the held tasks
get `drain_secs` to finish and be recorded; whatever still runs then is left to lapse and run
again elsewhere. A second signal stops at once. Either way `run` returns, so the process
exits 0.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import queue as _queue
import re
import signal
import socket
import threading
from dataclasses import dataclass
from typing import Any, Callable

from . import schema
from ._http import AsyncTransport, problem, raise_for
from .context import Context
from .errors import Cancelled, ErrandError, Fail, Retry
from .task import TaskDef

log = logging.getLogger("errand")

MAX_PER_REQUEST = 1000
DEFAULT_CONCURRENCY = 16
PROGRESS_GAP_SECS = 0.5


@dataclass(eq=False)
class _Held:
    """One leased attempt, from lease until errand records its report (or it is lost)."""

    leased: dict
    ctx: Context
    job: asyncio.Task | None = None
    report: dict | None = None
    lost: bool = False
    released: bool = False

    @property
    def id(self) -> str:
        return self.leased["id"]

    @property
    def token(self) -> str:
        return self.leased["token"]

    @property
    def queue(self) -> str:
        return self.leased["queue"]


class _Threads:
    """Daemon threads for sync tasks: a task still running when the drain gives up must not
    keep the process from exiting (`concurrent.futures` joins its threads at exit)."""

    def __init__(self, most: int):
        self.most = most
        self.q: _queue.SimpleQueue = _queue.SimpleQueue()
        self.lock = threading.Lock()
        self.started = 0
        self.idle = 0

    def submit(self, loop: asyncio.AbstractEventLoop, fn: Callable, *args: Any) -> asyncio.Future:
        fut = loop.create_future()
        self.q.put((loop, fut, contextvars.copy_context(), fn, args))
        with self.lock:
            if self.idle == 0 and self.started < self.most:
                self.started += 1
                threading.Thread(target=self._serve, name=f"errand-task-{self.started}",
                                 daemon=True).start()
            else:
                self.idle -= 1
        return fut

    def _serve(self) -> None:
        while True:
            loop, fut, ctx, fn, args = self.q.get()
            try:
                out, err = ctx.run(fn, *args), None
            except BaseException as e:  # noqa: BLE001 - handed to the awaiting coroutine
                out, err = None, e
            try:
                loop.call_soon_threadsafe(_settle, fut, out, err)
            except RuntimeError:  # the loop closed: the worker stopped without this task
                return
            with self.lock:
                self.idle += 1


def _settle(fut: asyncio.Future, out: Any, err: BaseException | None) -> None:
    if fut.cancelled():
        return
    if err is not None:
        fut.set_exception(err)
    else:
        fut.set_result(out)


def _label(name: str | None) -> str:
    raw = name or f"py-{socket.gethostname()}"
    return re.sub(r"[^A-Za-z0-9_.:-]", "-", raw)[:32] or "py"


class Worker:
    """Runs decorated task functions for errand.

    ```python
    worker = Worker("http://localhost:8080", queues={"images": 8})

    @worker.task(idempotent=True)
    def resize(p: Resize, ctx: Context) -> Resized: ...

    worker.run()
    ```

    `queues` maps each queue served to how many of its tasks run at once (a task's `queue=`
    adds its queue with 16 when missing). The worker registers every task on every queue
    it serves, as errand's workers do: give kinds their own queue to keep them apart.
    """

    def __init__(self, url: str | None = None, *, api_key: str | None = None,
                 name: str | None = None, queues: dict[str, int] | None = None,
                 drain_secs: float = 30.0, lease_wait_ms: int = 2000,
                 report_linger_ms: float = 2.0):
        self.url = url or os.environ.get("ERRAND_URL", "http://localhost:8080")
        self.api_key = api_key if api_key is not None else os.environ.get("ERRAND_API_KEY")
        self.name = _label(name)
        self.queues: dict[str, int] = dict(queues or {})
        self.drain_secs = drain_secs
        self.lease_wait_ms = lease_wait_ms
        self.report_linger = report_linger_ms / 1000.0
        self.tasks: dict[str, TaskDef] = {}
        self.worker_id: str | None = None
        self.lease_secs = 10.0
        self.heartbeat_secs = 2.5
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._hard_stop = False

    # --- defining tasks -------------------------------------------------------------

    def task(self, fn: Callable | None = None, *, name: str | None = None,
             queue: str | None = None, summary: str | None = None, idempotent: bool = False,
             aliases: list[str] | None = None, payload_schema: dict | None = None,
             result_schema: dict | None = None, example: Any = None) -> Callable:
        """Registers `fn` as kind `name` (default: the function's name).

        The first parameter's annotation (a dataclass, a pydantic model or a JSON type) is
        the payload's type and gives `payload_schema`; the return annotation gives
        `result_schema`. A second parameter receives the attempt's `Context`. The summary
        defaults to the docstring's first paragraph.
        """

        def register(f: Callable) -> Callable:
            q = queue or next(iter(self.queues), "default")
            td = TaskDef.of(f, name=name, queue=q, summary=summary, idempotent=idempotent,
                            aliases=aliases, payload_schema=payload_schema,
                            result_schema=result_schema, example=example)
            if td.name in self.tasks:
                raise ValueError(f"two tasks named {td.name!r}")
            self.tasks[td.name] = td
            self.queues.setdefault(q, DEFAULT_CONCURRENCY)
            return f

        return register(fn) if fn is not None else register

    # --- running ----------------------------------------------------------------------

    def run(self) -> None:
        """Runs until SIGTERM or SIGINT (then drains, see the module docs) and returns."""
        if logging.getLogger("httpx").level == logging.NOTSET:
            logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO,
                                format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        asyncio.run(self.run_async(signals=threading.current_thread() is threading.main_thread()))

    def stop(self) -> None:
        """Asks a running worker to drain and stop; safe from any thread."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._request_stop)

    async def run_async(self, *, signals: bool = True) -> None:
        if not self.tasks:
            raise ValueError("no tasks: decorate at least one function with @worker.task")
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._hard_stop = False
        self._http = AsyncTransport(self.url, self.api_key)
        self._held: dict[str, _Held] = {}
        self._free = dict(self.queues)
        self._slots = {q: asyncio.Event() for q in self.queues}
        self._outbox: list[_Held] = []
        self._outbox_ready = asyncio.Event()
        self._news = asyncio.Event()
        self._loop_thread = threading.get_ident()
        self._idle = asyncio.Event()
        self._register_lock = asyncio.Lock()
        self._threads = _Threads(sum(self.queues.values()))
        if signals:
            for s in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(s, self._request_stop)
        self._fatal: BaseException | None = None
        self._hard = asyncio.Event()
        try:
            await self._register()
            background = [self._spawn(self._heartbeat_loop(), "heartbeat"),
                          self._spawn(self._complete_loop(), "complete")]
            leasing = [self._spawn(self._lease_loop(q), f"lease {q}") for q in self.queues]
            await self._stopping.wait()
            log.info("stopping: no new leases; %d task(s) held", len(self._held))
            # The leases in flight come back first (their tasks are held from then on).
            await self._until_hard(asyncio.gather(*leasing, return_exceptions=True))
            if not self._hard_stop:
                self._check_idle()
                if await self._until_hard(self._idle.wait(), self.drain_secs):
                    log.info("drained: every held task recorded")
                elif not self._hard_stop:
                    log.warning("drain gave up after %.0fs: %d task(s) left to lapse and run "
                                "again", self.drain_secs, len(self._held))
            self._hard_stop = True
            for t in background + leasing:
                t.cancel()
            await asyncio.gather(*background, *leasing, return_exceptions=True)
            for h in list(self._held.values()):
                if h.job is not None:
                    h.job.cancel()
        finally:
            if signals:
                for s in (signal.SIGTERM, signal.SIGINT):
                    self._loop.remove_signal_handler(s)
            await self._http.aclose()
            log.info("worker %s stopped", self.worker_id)
        if self._fatal is not None:
            raise self._fatal

    def _spawn(self, coro: Any, name: str) -> asyncio.Task:
        """A loop of the worker's; one that dies of an error stops the worker with it."""
        t = asyncio.create_task(coro, name=name)

        def ended(t: asyncio.Task) -> None:
            if t.cancelled() or t.exception() is None or self._fatal is not None:
                return
            self._fatal = t.exception()
            log.error("%s loop failed: %s; stopping", name, self._fatal)
            self._request_stop()
            self._request_stop()

        t.add_done_callback(ended)
        return t

    async def _until_hard(self, aw: Any, timeout: float | None = None) -> bool:
        """Awaits `aw` unless a second stop (or `timeout`) comes first: true if it ended."""
        job = asyncio.ensure_future(aw)
        hard = asyncio.ensure_future(self._hard.wait())
        done, _ = await asyncio.wait({job, hard}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        hard.cancel()
        if job not in done:
            job.cancel()
            return False
        return True

    def _request_stop(self) -> None:
        assert self._stopping is not None
        if self._stopping.is_set():
            log.warning("second stop: not waiting for held tasks")
            self._hard_stop = True
            self._hard.set()
        self._stopping.set()
        for e in self._slots.values():
            e.set()

    def _check_idle(self) -> None:
        if self._stopping is not None and self._stopping.is_set() and not self._held:
            self._idle.set()

    # --- registration -----------------------------------------------------------------

    async def _register(self, stale: str | None = None) -> None:
        """Registers (again, when errand forgot `stale`); held tasks keep their tokens."""
        async with self._register_lock:
            if stale is not None and self.worker_id != stale:
                return  # another loop registered already
            body = {"name": self.name,
                    "queues": [{"name": q, "concurrency": c} for q, c in self.queues.items()],
                    "kinds": [t.spec() for t in self.tasks.values()]}
            res = await self._http.post("/v1/worker/register", body)
            if res.status_code != 200:
                raise_for(res, "register")
            r = res.json()
            self.worker_id = r["worker"]
            self.lease_secs = float(r["lease_secs"])
            self.heartbeat_secs = float(r["heartbeat_secs"])
            log.info("registered as %s: kinds %s on queues %s (lease %.1fs)", self.worker_id,
                     ", ".join(self.tasks), ", ".join(self.queues), self.lease_secs)

    async def _call(self, path: str, body: dict, **kw: Any):
        """POST as the registered worker; a 404 `worker-unknown` registers again and retries."""
        while True:
            me = self.worker_id
            body["worker"] = me
            res = await self._http.post(path, body, give_up=lambda: self._hard_stop, **kw)
            if res.status_code == 404 and "worker-unknown" in str(problem(res).get("type")):
                log.warning("errand forgot worker %s: registering again", me)
                await self._register(stale=me)
                continue
            return res

    # --- lease ------------------------------------------------------------------------

    async def _lease_loop(self, q: str) -> None:
        most = self.queues[q]
        enough = max(1, min(most // 4, MAX_PER_REQUEST))
        stopping = self._stopping
        assert stopping is not None
        while not stopping.is_set():
            if self._free[q] == 0:
                self._slots[q].clear()
                await self._slots[q].wait()
                continue
            # Slots free up one by one as reports are recorded; a moment's wait for more
            # makes one lease of many rather than many of one.
            deadline = self._loop.time() + 0.02
            while self._free[q] < min(enough, most) and not stopping.is_set():
                left = deadline - self._loop.time()
                if left <= 0:
                    break
                self._slots[q].clear()
                try:
                    await asyncio.wait_for(self._slots[q].wait(), left)
                except asyncio.TimeoutError:
                    break
            if stopping.is_set():
                break
            n = min(self._free[q], MAX_PER_REQUEST)
            wait_ms = self.lease_wait_ms
            res = await self._call("/v1/worker/lease",
                                   {"queues": [q], "max": n, "wait_ms": wait_ms},
                                   timeout=wait_ms / 1000.0 + 30.0)
            if res.status_code != 200:
                raise_for(res, f"lease from {q}")
            for t in res.json()["tasks"]:
                self._start(t)

    def _start(self, t: dict) -> None:
        ctx = Context(task_id=t["id"], kind=t["kind"], queue=t["queue"], attempt=t["attempt"],
                      max_attempts=t["max_attempts"], timeout_secs=t.get("timeout_secs"),
                      traceparent=t.get("traceparent"), workflow=t.get("workflow"),
                      inputs=t.get("inputs"))
        ctx._news = self._progress_news
        h = _Held(leased=t, ctx=ctx)
        self._held[h.token] = h
        self._free[h.queue] = self._free.get(h.queue, 0) - 1
        h.job = asyncio.create_task(self._run(h), name=f"task {h.id}")

    # --- running one attempt ----------------------------------------------------------

    async def _run(self, h: _Held) -> None:
        t, ctx = h.leased, h.ctx
        td = self.tasks.get(t["kind"])
        try:
            if td is None:
                raise Retry(f"this worker does not run kind {t['kind']!r}", kind="unknown_kind")
            try:
                payload = schema.from_json(td.payload_type, t.get("payload"))
            except Exception as e:  # noqa: BLE001 - the payload passed errand's schema
                raise Fail(f"payload does not fit {td.name}: {e}", kind="invalid_payload") from e
            args = (payload, ctx) if td.wants_context else (payload,)
            if td.is_async:
                work = td.fn(*args)
            else:
                work = self._threads.submit(asyncio.get_running_loop(), td.fn, *args)
            out = await (asyncio.wait_for(work, ctx.timeout_secs) if ctx.timeout_secs else work)
            report = {"outcome": "succeeded", "result": schema.to_json(out)}
        except Cancelled as e:
            report = {"outcome": "cancelled", "message": e.message}
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if h.lost or self._hard_stop or task is None:
                raise
            task.uncancel()
            report = {"outcome": "cancelled", "message": "cancelled by request"}
        except asyncio.TimeoutError:
            ctx._cancel.set()  # a sync task may still be running: let it see it should stop
            report = _failed("timeout", f"exceeded its timeout of {ctx.timeout_secs}s", True)
        except Retry as e:
            report = _failed(e.kind, e.message, True)
            if e.in_secs is not None:
                report["retry_in_secs"] = max(0.0, float(e.in_secs))
        except Fail as e:
            report = _failed(e.kind, e.message, False)
        except Exception as e:  # noqa: BLE001 - any other exception fails the attempt
            log.warning("task %s (%s) attempt %d raised %s: %s", h.id, t["kind"], ctx.attempt,
                        type(e).__name__, e)
            report = _failed(type(e).__name__, str(e) or repr(e), True)
        if h.lost:
            return
        h.report = {"id": h.id, "token": h.token, **report}
        self._outbox.append(h)
        self._outbox_ready.set()

    # --- complete ---------------------------------------------------------------------

    async def _complete_loop(self) -> None:
        while True:
            await self._outbox_ready.wait()
            if self.report_linger and len(self._outbox) < MAX_PER_REQUEST:
                await asyncio.sleep(self.report_linger)
            batch = [h for h in self._outbox[:MAX_PER_REQUEST] if not h.lost]
            del self._outbox[:MAX_PER_REQUEST]
            if not self._outbox:
                self._outbox_ready.clear()
            if batch:
                await self._send(batch)

    async def _send(self, batch: list[_Held]) -> None:
        res = await self._call("/v1/worker/complete", {"reports": [h.report for h in batch]})
        if res.status_code != 200:
            # The batch as a whole was refused: nothing in it can be recorded as it stands.
            log.error("complete refused %d report(s): %s %s", len(batch), res.status_code,
                      problem(res).get("detail", res.text[:300]))
            for h in batch:
                self._release(h)
            return
        again = []
        for h, r in zip(batch, res.json()["results"]):
            status = r.get("status")
            if status == 200:
                self._release(h)
            elif status == 409:
                log.warning("report for task %s refused (%s): another attempt holds it; "
                            "nothing recorded", h.id, r.get("type", "stale-claim"))
                self._release(h)
            elif status == 422 and h.report and h.report.get("outcome") == "succeeded":
                field_ = r.get("field") or "result"
                log.error("task %s returned a result errand refuses (%s: %s): reporting it "
                          "failed", h.id, field_, r.get("detail"))
                h.report = {"id": h.id, "token": h.token,
                            **_failed("invalid_result", f"{field_}: {r.get('detail')}", False)}
                again.append(h)
            else:
                log.error("report for task %s refused: %s %s", h.id, status, r.get("detail"))
                self._release(h)
        if again:
            self._outbox[:0] = again
            self._outbox_ready.set()

    def _release(self, h: _Held) -> None:
        if h.released:
            return
        h.released = True
        self._held.pop(h.token, None)
        self._free[h.queue] = self._free.get(h.queue, 0) + 1
        ev = self._slots.get(h.queue)
        if ev is not None:
            ev.set()
        self._check_idle()

    # --- heartbeat --------------------------------------------------------------------

    def _progress_news(self) -> None:
        """A task has progress to tell (from any thread): the next heartbeat comes sooner."""
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._news.set()
        else:
            loop.call_soon_threadsafe(self._news.set)

    async def _heartbeat_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            try:
                await asyncio.wait_for(self._news.wait(), self.heartbeat_secs)
                # Progress: at most two heartbeats a second, whatever the tasks do.
                gap = min(PROGRESS_GAP_SECS, self.heartbeat_secs) - (loop.time() - last)
                if gap > 0:
                    await asyncio.sleep(gap)
            except asyncio.TimeoutError:
                pass
            self._news.clear()
            last = loop.time()
            held = [h for h in self._held.values() if not h.lost]
            for i in range(0, max(1, len(held)), MAX_PER_REQUEST):
                await self._heartbeat(held[i:i + MAX_PER_REQUEST])

    async def _heartbeat(self, chunk: list[_Held]) -> None:
        tasks = []
        for h in chunk:
            item: dict = {"id": h.id, "token": h.token}
            p = h.ctx._take_progress()
            if p is not None:
                item["progress"] = p
            tasks.append(item)
        res = await self._call("/v1/worker/heartbeat", {"tasks": tasks})
        if res.status_code != 200:
            log.error("heartbeat refused: %s %s", res.status_code,
                      problem(res).get("detail", res.text[:300]))
            return
        r = res.json()
        by_id: dict[str, list[_Held]] = {}
        for h in chunk:
            by_id.setdefault(h.id, []).append(h)
        for tid in r.get("cancel", []):
            for h in by_id.get(tid, []):
                if not h.ctx.cancelled:
                    log.info("task %s: cancel requested", tid)
                    h.ctx._cancel.set()
                    td = self.tasks.get(h.leased["kind"])
                    if td is not None and td.is_async and h.job is not None and h.report is None:
                        h.job.cancel()
        for tid in r.get("lost", []):
            for h in by_id.get(tid, []):
                if h.released:
                    continue
                log.warning("task %s lost: this worker no longer holds it (its lease lapsed "
                            "or it was given back); stopping it, reporting nothing", tid)
                h.lost = True
                h.ctx._cancel.set()
                if h.job is not None and not h.job.done():
                    h.job.cancel()
                self._release(h)


def _failed(kind: str, message: str, retryable: bool) -> dict:
    return {"outcome": "failed", "error": {"kind": kind[:64] or "error", "message": message},
            "retryable": retryable}


__all__ = ["Worker", "Context", "ErrandError"]
