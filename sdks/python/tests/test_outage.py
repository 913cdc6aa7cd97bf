"""Redis going away under a running worker: the api answers 503 with Retry-After, the SDK
waits it out with backoff, and nothing it held is lost. Its own redis-server (with an
append-only file, so a restart keeps the data) and api, since the outage is the test."""

import signal
import subprocess
import sys
import time

import httpx
import pytest

from conftest import HERE, ROOT, Api, free_port, start_api, start_redis, wait_until


def test_a_redis_outage_is_waited_out_and_nothing_held_is_lost(tmp_path):
    rport, aport = free_port(), free_port()
    redis = start_redis(rport, tmp_path, durable=True)
    api_log = open(tmp_path / "api.log", "wb")
    apip = start_api(f"redis://127.0.0.1:{rport}", aport, api_log, lease_secs=10)
    wlog = open(tmp_path / "worker.log", "wb")
    worker = None
    try:
        base = f"http://127.0.0.1:{aport}"
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
        redis = start_redis(rport, tmp_path, durable=True)
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


pytestmark = pytest.mark.timeout(180)
