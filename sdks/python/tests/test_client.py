"""`errand.Client`: submit, wait and read back, and refusals as `ErrandError`s."""

import pytest

from errand import Client, ErrandError


def test_submit_wait_get(api, ns, spawn):
    spawn()
    with Client(api.base) as c:
        t = c.submit(f"{ns}_add", {"x": 20, "y": 22}, queue=ns)
        assert t["state"] == "queued"
        rec = c.wait(t["id"], timeout=20)
        assert (rec["state"], rec["result"]) == ("succeeded", {"sum": 42})
        assert c.get(t["id"])["result"] == {"sum": 42}


def test_a_refused_submit_names_the_field(api, ns, spawn):
    spawn()
    with Client(api.base) as c, pytest.raises(ErrandError) as e:
        c.submit(f"{ns}_add", {"x": 1}, queue=ns)
    assert e.value.status == 422
    assert e.value.field == "payload.y"


def test_wait_gives_up_with_timeout_error(api, ns, spawn):
    spawn()
    with Client(api.base) as c:
        t = c.submit(f"{ns}_sleepy", {"secs": 30}, queue=ns)
        with pytest.raises(TimeoutError):
            c.wait(t["id"], timeout=1.5)
        assert c.cancel(t["id"])
        assert c.wait(t["id"], timeout=20)["state"] == "cancelled"


def test_a_unique_key_answers_the_first_task_inside_its_window(api, ns, spawn):
    spawn()
    with Client(api.base) as c:
        a = c.submit(f"{ns}_sleepy", {"secs": 5}, queue=ns, unique_key="refresh:7",
                     unique_for_secs=60)
        b = c.submit(f"{ns}_sleepy", {"secs": 5}, queue=ns, unique_key="refresh:7",
                     unique_for_secs=60)
        assert b["id"] == a["id"]
        c.cancel(a["id"])


def test_priority_and_concurrency_key_are_sent_and_a_bad_one_is_refused(api, ns, spawn):
    spawn()
    with Client(api.base) as c:
        t = c.submit(f"{ns}_sleepy", {"secs": 5}, queue=ns, priority=8,
                     concurrency_key="customer-7")
        assert (t["priority"], t["concurrency_key"]) == (8, "customer-7")
        c.cancel(t["id"])
        with pytest.raises(ErrandError) as e:
            c.submit(f"{ns}_sleepy", {"secs": 5}, queue=ns, priority=10)
        assert (e.value.status, e.value.field) == (422, "priority")
