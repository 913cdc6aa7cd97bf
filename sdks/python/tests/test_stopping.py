"""A worker's process ending in each way it can: SIGTERM drains, SIGKILL loses nothing
(the lease lapses and another worker runs the task again), and a worker cut off past its
lease never records over the attempt that replaced it."""

import signal

from conftest import LEASE_SECS, wait_until


def test_sigterm_drains_running_tasks_and_exits_0(api, ns, spawn):
    w = spawn()
    tid = api.submit(f"{ns}_sleepy", {"secs": 1.5}, queue=ns)
    wait_until("the task to run", lambda: api.get(tid)["state"] == "running")
    w.signal(signal.SIGTERM)
    assert w.wait_exit(30) == 0, w.log()
    rec = api.get(tid)
    assert rec["state"] == "succeeded", rec
    assert rec["attempt"] == 1
    assert "drained" in w.log()


def test_sigterm_when_idle_exits_0_promptly(api, ns, spawn):
    w = spawn()
    w.signal(signal.SIGTERM)
    assert w.wait_exit(10) == 0, w.log()


def test_a_task_whose_worker_is_killed_runs_again(api, ns, spawn):
    a = spawn("a")
    tid = api.submit(f"{ns}_sleepy", {"secs": 30}, queue=ns, max_attempts=3)
    wait_until("worker a to run the task", lambda: api.get(tid)["state"] == "running")
    a.signal(signal.SIGKILL)
    a.wait_exit(10)
    # The same kind from a second worker; the task's lease lapses and it runs there.
    b = spawn("b")
    rec = wait_until("attempt 2 to run", lambda: (r := api.get(tid))["attempt"] == 2
                     and r["state"] == "running" and r, timeout=LEASE_SECS * 5,
                     detail=lambda: (api.get(tid), b.log()[-2000:]))
    assert rec["worker"].startswith("http:b:")
    assert rec["error"]["kind"] == "worker_lost", rec
    api.http.post(f"/v1/tasks/{tid}/cancel")
    assert api.wait_terminal(tid)["state"] == "cancelled"
    assert not b.exited()


def test_a_worker_cut_off_past_its_lease_does_not_record_over_the_new_attempt(api, ns, spawn):
    a = spawn("a")
    tid = api.submit(f"{ns}_sleepy", {"secs": 3}, queue=ns, max_attempts=3)
    wait_until("worker a to run the task", lambda: api.get(tid)["state"] == "running")
    a.signal(signal.SIGSTOP)
    b = spawn("b")
    wait_until("attempt 2 on worker b", lambda: (r := api.get(tid))["attempt"] == 2
               and r["worker"].startswith("http:b:"), timeout=LEASE_SECS * 5,
               detail=lambda: (api.get(tid), b.log()[-2000:]))
    a.signal(signal.SIGCONT)
    # a wakes with attempt 1 done (its sleep is over): its heartbeat is told the task is
    # lost, or its report is refused as stale; either way nothing of it is recorded.
    wait_until("worker a to learn it lost the task",
               lambda: f"task {tid} lost" in a.log() or f"report for task {tid} refused"
               in a.log(), timeout=15)
    rec = api.wait_terminal(tid)
    assert rec["state"] == "succeeded", rec
    assert rec["attempt"] == 2
    assert rec["result"] == {"pid": b.pid, "attempt": 2}
    assert rec["worker"].startswith("http:b:")
    assert not a.exited()


def test_a_late_report_is_refused_409_and_the_record_keeps_the_new_attempts_result(
        api, ns, spawn):
    # The cut-off worker is played by hand over the protocol, so its report is certain to
    # arrive late (an SDK worker hears `lost` from its next heartbeat first, as above).
    reg = api.http.post("/v1/worker/register", json={
        "name": "late", "queues": [{"name": ns, "concurrency": 1}],
        "kinds": [{"name": f"{ns}_sleepy", "payload_schema": {"type": "object"}}]})
    assert reg.status_code == 200, reg.text
    me = reg.json()["worker"]
    tid = api.submit(f"{ns}_sleepy", {"secs": 0.2}, queue=ns, max_attempts=3)
    leased = api.http.post("/v1/worker/lease", json={"worker": me, "max": 1, "wait_ms": 5000},
                           timeout=10).json()["tasks"]
    assert [t["id"] for t in leased] == [tid]
    token = leased[0]["token"]
    b = spawn("b")  # no heartbeat from "late": its lease lapses and b runs attempt 2
    rec = api.wait_terminal(tid, timeout=LEASE_SECS * 5)
    assert (rec["state"], rec["attempt"]) == ("succeeded", 2), rec
    late = api.http.post("/v1/worker/complete", json={"worker": me, "reports": [
        {"id": tid, "token": token, "outcome": "succeeded", "result": {"pid": 0}}]})
    assert late.status_code == 200, late.text
    assert late.json()["results"][0]["status"] == 409
    assert late.json()["results"][0]["type"].endswith("/stale-claim")
    one = api.http.post(f"/v1/worker/tasks/{tid}/complete",
                        json={"token": token, "outcome": "succeeded", "result": {"pid": 0}})
    assert one.status_code == 409
    assert one.headers["content-type"].startswith("application/problem+json")
    rec = api.get(tid)
    assert rec["result"] == {"pid": b.pid, "attempt": 2}
    assert rec["worker"].startswith("http:b:")
