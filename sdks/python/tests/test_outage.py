"""Redis going away under a running worker: the api answers 503 with Retry-After, the SDK
waits it out with backoff, and nothing it held is lost. Its own redis-server (with an
append-only file, so a restart keeps the data) and api, since the outage is the test."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import HERE, ROOT, Api, free_port, wait_until


def start_redis(port: int, d: Path) -> subprocess.Popen:
    p = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind",
                          "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync",
                          "always", "--dir", str(d)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    wait_until("redis-server to answer", up)
    return p


def test_a_redis_outage_is_waited_out_and_nothing_held_is_lost(tmp_path):
    rport, aport = free_port(), free_port()
    redis = start_redis(rport, tmp_path)
    exe = Path(os.environ.get("ERRAND_API_BIN", ROOT / "target/debug/errand-api"))
    env = {**os.environ, "ERRAND_ENV": "local",
           "ERRAND__REDIS__URL": f"redis://127.0.0.1:{rport}",
           "ERRAND__API__HOST": "127.0.0.1", "ERRAND__API__PORT": str(aport),
           "ERRAND__WORKER__LEASE_SECS": "10", "ERRAND__API__UPKEEP_MS": "100"}
    api_log = open(tmp_path / "api.log", "wb")
    apip = subprocess.Popen([str(exe)], cwd=ROOT, env=env, stdout=api_log,
                            stderr=subprocess.STDOUT)
    wlog = open(tmp_path / "worker.log", "wb")
    worker = None
    try:
        base = f"http://127.0.0.1:{aport}"
        wait_until("the api", lambda: _ok(f"{base}/healthz"), timeout=60)
        api = Api(base)
        worker = subprocess.Popen([sys.executable, str(HERE / "app.py"), "--url", base,
                                   "--queue", "out", "--prefix", "o_", "--name", "outage"],
                                  cwd=ROOT, stdout=wlog, stderr=subprocess.STDOUT)
        wait_until("the worker to register", lambda: api.kind("o_sleepy"), timeout=30)
        ids = [api.submit("o_sleepy", {"secs": 1.0}, queue="out") for _ in range(4)]
        wait_until("the tasks to run",
                   lambda: all(api.get(i)["state"] == "running" for i in ids))
        redis.send_signal(signal.SIGTERM)
        redis.wait(10)
        # The tasks end while Redis is away: their reports meet 503s.
        r = httpx.get(f"{base}/v1/tasks/{ids[0]}", timeout=10)
        assert r.status_code == 503
        assert "retry-after" in r.headers
        log = tmp_path / "worker.log"
        wait_until("the worker to back off", lambda: "again in" in log.read_text(),
                   timeout=20)
        time.sleep(1.5)  # an outage of a few seconds, not one request's worth
        redis = start_redis(rport, tmp_path)
        recs = [api.wait_terminal(i, timeout=30) for i in ids]
        assert [r["state"] for r in recs] == ["succeeded"] * 4, recs
        assert all(r["attempt"] == 1 for r in recs), recs
        assert worker.poll() is None, log.read_text()
        # And it goes on working.
        assert api.wait_terminal(api.submit("o_add", {"x": 2, "y": 3}, queue="out"))[
            "result"] == {"sum": 5}
    finally:
        if worker is not None:
            worker.kill()
            worker.wait(10)
        apip.terminate()
        apip.wait(15)
        redis.kill()
        redis.wait(10)
        api_log.close()
        wlog.close()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


pytestmark = pytest.mark.timeout(180)
