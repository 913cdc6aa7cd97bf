"""A real redis-server and the real `errand-api` binary for the SDK's tests, started once
per session on free ports, and workers (tests/app.py) started per test as processes.

The api binary is `target/debug/errand-api` (`ERRAND_API_BIN` overrides it); `just
sdk-test` builds it. Leases are 2 s so lapses are quick to provoke.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
LEASE_SECS = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, cond: Callable, timeout: float = 20.0, every: float = 0.05,
               detail: Callable | None = None):
    """`cond()`'s first truthy value, or a failure naming `what` (and `detail()`) after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            more = f": {detail()}" if detail is not None else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what}{more}")
        time.sleep(every)


def start_redis(port: int, d: Path, *, durable: bool = False) -> subprocess.Popen:
    """A redis-server on `port` with its files in `d`, answering PING; `durable` keeps an
    append-only file synced on every write, so a restart keeps the data."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed (scripts/ensure-redis.sh installs it)")
    aof = ["--appendonly", "yes", "--appendfsync", "always"] if durable else [
        "--appendonly", "no"]
    p = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", *aof,
                          "--dir", str(d)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    wait_until("redis-server to answer", up)
    return p


def start_api(redis_url: str, port: int, log, lease_secs: int = LEASE_SECS) -> subprocess.Popen:
    """The real errand-api on `port`, logging to the open file `log`."""
    exe = Path(os.environ.get("ERRAND_API_BIN", ROOT / "target/debug/errand-api"))
    if not exe.exists():
        pytest.fail(f"{exe} is missing: build it (`cargo build -p errand-api`)")
    env = {**os.environ, "ERRAND_ENV": "local", "ERRAND__REDIS__URL": redis_url,
           "ERRAND__API__HOST": "127.0.0.1", "ERRAND__API__PORT": str(port),
           "ERRAND__WORKER__LEASE_SECS": str(lease_secs), "ERRAND__API__UPKEEP_MS": "100"}
    p = subprocess.Popen([str(exe)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def ready():
        if p.poll() is not None:
            pytest.fail(f"errand-api exited with {p.returncode}; see {log.name}")
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until("errand-api to answer /healthz", ready, timeout=60)
    return p


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    port = free_port()
    p = start_redis(port, tmp_path_factory.mktemp("redis"))
    yield f"redis://127.0.0.1:{port}"
    p.terminate()
    p.wait(10)


class Api:
    """The running api: its base URL and a client for the tests' own calls."""

    def __init__(self, base: str):
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=30)

    def submit(self, kind: str, payload, **extra) -> str:
        r = self.http.post("/v1/tasks", json={"kind": kind, "payload": payload, **extra})
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def get(self, task_id: str) -> dict:
        r = self.http.get(f"/v1/tasks/{task_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_terminal(self, task_id: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = max(0, int(deadline - time.monotonic()))
            r = self.http.get(f"/v1/tasks/{task_id}", params={"wait": min(left, 10)},
                              timeout=40)
            rec = r.json()
            if r.status_code == 200 and rec["state"] in ("succeeded", "failed", "cancelled"):
                return rec
            if time.monotonic() > deadline:
                pytest.fail(f"task {task_id} still not terminal after {timeout}s: {rec}")
            if r.status_code == 503:  # Redis away: the api says when to ask again
                time.sleep(min(1.0, float(r.headers.get("retry-after", "0.2"))))
            else:
                assert r.status_code == 200, r.text

    def kind(self, name: str) -> dict | None:
        kinds = self.http.get("/v1/kinds").json()
        return next((k for k in kinds if k["name"] == name), None)


@pytest.fixture(scope="session")
def api(redis_url, tmp_path_factory):
    port = free_port()
    log = open(tmp_path_factory.mktemp("api") / "api.log", "wb")
    p = start_api(redis_url, port, log)
    yield Api(f"http://127.0.0.1:{port}")
    p.terminate()
    p.wait(15)
    log.close()


class WorkerProc:
    """tests/app.py running as a process, its log kept for the test to read."""

    def __init__(self, api: Api, queue: str, prefix: str, name: str, extra: list[str]):
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"worker-{name}-", suffix=".log")[1])
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "app.py"), "--url", api.base, "--queue", queue,
             "--prefix", prefix, "--name", name, *extra],
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        wait_until(f"worker {name} to register", lambda: self.exited() or "registered as"
                   in self.log(), timeout=30)
        assert self.proc.poll() is None, self.log()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def exited(self) -> bool:
        return self.proc.poll() is not None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {self.name} still running {timeout}s after the signal:\n"
                        + self.log()[-3000:])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


@pytest.fixture
def ns() -> str:
    """A name no other test uses: the test's queue, and the prefix of its kinds."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def spawn(api, ns):
    procs: list[WorkerProc] = []

    def start(name: str = "pytest", *extra: str) -> WorkerProc:
        w = WorkerProc(api, ns, f"{ns}_", name, list(extra))
        procs.append(w)
        return w

    yield start
    for w in procs:
        w.close()
