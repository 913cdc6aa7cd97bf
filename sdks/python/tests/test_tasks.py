"""What a task function becomes: its kind in errand's registry (schemas from its
annotations), and each way an attempt can end."""

from conftest import wait_until


def test_a_dataclass_payload_is_the_kinds_schema_and_bad_payloads_are_refused(api, ns, spawn):
    spawn()
    kind = api.kind(f"{ns}_add")
    assert kind is not None
    assert kind["payload_schema"] == {
        "type": "object", "additionalProperties": False, "required": ["x", "y"],
        "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}}
    assert kind["result_schema"]["properties"] == {"sum": {"type": "integer"}}
    assert kind["idempotent"] is True
    assert kind["summary"] == "Adds two integers (sync)."

    r = api.http.post("/v1/tasks", json={"kind": f"{ns}_add", "queue": ns,
                                         "payload": {"x": "one", "y": 2}})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == "payload.x"
    r = api.http.post("/v1/tasks", json={"kind": f"{ns}_add", "queue": ns,
                                         "payload": {"x": 1, "y": 2, "z": 3}})
    assert r.status_code == 422, r.text

    rec = api.wait_terminal(api.submit(f"{ns}_add", {"x": 1, "y": 2}, queue=ns))
    assert rec["state"] == "succeeded", rec
    assert rec["result"] == {"sum": 3}
    assert rec["attempt"] == 1
    assert rec["worker"].startswith("http:pytest:")


def test_a_pydantic_model_gives_payload_and_result(api, ns, spawn):
    spawn()
    kind = api.kind(f"{ns}_order")
    assert kind["payload_schema"]["properties"]["qty"]["minimum"] == 1
    r = api.http.post("/v1/tasks", json={"kind": f"{ns}_order", "queue": ns,
                                         "payload": {"item": "tea", "qty": 0}})
    assert r.status_code == 422
    assert r.json()["field"] == "payload.qty"
    rec = api.wait_terminal(api.submit(f"{ns}_order", {"item": "tea", "qty": 4}, queue=ns))
    assert (rec["state"], rec["result"]) == ("succeeded", {"item": "tea", "total": 12}), rec


def test_async_tasks_run_beside_sync_ones(api, ns, spawn):
    spawn()
    ids = [api.submit(f"{ns}_aadd", {"x": i, "y": 1}, queue=ns) for i in range(20)]
    ids += [api.submit(f"{ns}_add", {"x": i, "y": 2}, queue=ns) for i in range(20)]
    recs = [api.wait_terminal(i) for i in ids]
    assert [r["result"]["sum"] for r in recs] == [i + 1 for i in range(20)] + [
        i + 2 for i in range(20)]
    assert {r["state"] for r in recs} == {"succeeded"}


def test_progress_shows_while_the_task_runs(api, ns, spawn):
    spawn()
    tid = api.submit(f"{ns}_sleepy", {"secs": 3, "tag": "p"}, queue=ns)
    rec = wait_until("progress on the record", lambda: (r := api.get(tid)).get("progress")
                     and r, timeout=10)
    assert rec["state"] == "running"
    assert rec["progress"] == {"percent": 50, "message": "half way p"}
    assert api.wait_terminal(tid)["state"] == "succeeded"


def test_a_cancel_stops_sync_and_async_tasks(api, ns, spawn):
    w = spawn()
    ids = [api.submit(f"{ns}_sleepy", {"secs": 60}, queue=ns),
           api.submit(f"{ns}_asleepy", {"secs": 60}, queue=ns)]
    for tid in ids:
        wait_until("the task to run", lambda: api.get(tid)["state"] == "running")
        r = api.http.post(f"/v1/tasks/{tid}/cancel")
        assert r.status_code in (200, 202), r.text
    for tid in ids:
        rec = api.wait_terminal(tid, timeout=15)
        assert rec["state"] == "cancelled", rec
    assert "cancel requested" in w.log()
    # The slots are free again: the worker goes on running.
    assert api.wait_terminal(api.submit(f"{ns}_add", {"x": 1, "y": 1}, queue=ns))[
        "state"] == "succeeded"


def test_retry_asks_for_another_attempt(api, ns, spawn):
    spawn()
    rec = api.wait_terminal(api.submit(f"{ns}_flaky", {}, queue=ns, max_attempts=3))
    assert rec["state"] == "succeeded", rec
    assert rec["attempt"] == 2
    assert rec["result"] == {"attempt": 2}


def test_fail_ends_the_task_with_attempts_left(api, ns, spawn):
    spawn()
    rec = api.wait_terminal(api.submit(f"{ns}_doomed", {}, queue=ns, max_attempts=5))
    assert rec["state"] == "failed", rec
    assert rec["attempt"] == 1
    assert rec["error"]["kind"] == "bad_input"
    assert rec["error"]["message"] == "this can never work"


def test_an_exception_is_retried_then_fails_named_after_its_class(api, ns, spawn):
    spawn()
    rec = api.wait_terminal(api.submit(f"{ns}_boom", {}, queue=ns, max_attempts=2), timeout=30)
    assert rec["state"] == "failed", rec
    assert rec["attempt"] == 2
    assert rec["error"]["kind"] == "ValueError"
    assert "kaboom" in rec["error"]["message"]


def test_a_result_off_its_schema_fails_the_task_invalid_result(api, ns, spawn):
    w = spawn()
    rec = api.wait_terminal(api.submit(f"{ns}_liar", {}, queue=ns, max_attempts=3))
    assert rec["state"] == "failed", rec
    assert rec["attempt"] == 1
    assert rec["error"]["kind"] == "invalid_result"
    assert "sum" in rec["error"]["message"]
    assert "result errand refuses" in w.log()


def test_a_workflow_step_reads_its_dependencies_results(api, ns, spawn):
    from errand import Client

    spawn()
    c = Client(api.base)
    w = c.submit_workflow([
        {"name": "a", "kind": f"{ns}_add", "queue": ns, "payload": {"x": 1, "y": 2}},
        {"name": "b", "kind": f"{ns}_aadd", "queue": ns, "payload": {"x": 10, "y": 20}},
        {"name": "t", "kind": f"{ns}_total", "queue": ns, "after": ["a", "b"],
         "on_failure": "fail"},
    ], id=f"{ns}-wf")
    assert w["state"] == "running"
    done = c.wait_workflow(f"{ns}-wf", timeout=30)
    assert done["state"] == "succeeded", done
    t = next(s for s in done["steps"] if s["name"] == "t")
    assert t["result"] == {"sum": 33, "workflow": f"{ns}-wf", "from": ["a", "b"]}
