"""The Python binding against a live router: requests, a retry on a failing backend, a session
that survives a backend drain with every message delivered, the errors mapped to exceptions,
the GIL released while waiting, and a create/free loop whose memory stays flat."""

import threading
import time

import pytest

import switchyard_client as sy


def test_requests_answer_with_status_headers_and_body(router):
    client = sy.Client(router.config())
    r = client.get("/api/titles")
    assert r.status == 200
    assert r.backend in ("echo-1", "echo-2")
    assert r.header("X-Backend-Id") == r.backend
    assert r.text() == r.backend and r.body == r.backend.encode()
    assert r.region == "local"
    # The backend's echo says what it received.
    echoed = client.post("/api/echo?echo=1", b"a body", headers={"x-player": "py"}).json()
    assert echoed["method"] == "POST" and echoed["body_bytes"] == 6
    assert echoed["headers"]["x-player"] == "py"
    put = client.request("PUT", "/api/echo?echo=1", headers=[("x-a", "1")], body="text").json()
    assert put["method"] == "PUT" and put["body_bytes"] == 4 and put["headers"]["x-a"] == "1"
    # A 4xx is an answer, not an exception.
    assert client.get("/api/missing?status=404").status == 404


def test_a_failing_backend_is_retried_by_the_sdk(router):
    router.fail("echo-1", 503)
    with sy.Client(router.config()) as client:
        answers = [client.get("/api/x") for _ in range(20)]
        assert all(a.status == 200 and a.backend == "echo-2" for a in answers)
        assert client.stats()["retries"] > 0, client.stats()


def test_a_session_survives_a_drain_of_its_backend_with_every_message_delivered(router):
    client = sy.Client(router.config())
    total = 100
    echoed, kinds, drained = set(), [], None
    with client.session("/ws/echo") as session:
        sent = 0
        deadline = time.monotonic() + 60
        while len(echoed) < total and time.monotonic() < deadline:
            if sent < total:
                session.send(f"m-{sent}")
                sent += 1
            try:
                event = session.next(timeout=0.02)
            except sy.RequestTimeout:
                continue
            assert event is not None, f"the session ended: {kinds}"
            kinds.append(event.kind)
            if event.kind == "connected" and drained is None:
                drained = event.backend
            elif event.kind == "message":
                echoed.add(int(event.data.rsplit("m-", 1)[1]))
            assert event.kind != "unconfirmed", event.messages
            if len(echoed) == 20 and router.admin_post(
                f"/admin/v1/backends/{drained}/drain", {"deadline_s": 20, "spread_s": 0}
            ) != 202:
                pytest.fail("the drain was refused")
    assert echoed == set(range(total)), f"missing {sorted(set(range(total)) - echoed)[:10]}; events {kinds}"
    assert "reconnecting" in kinds and "resumed" in kinds, kinds


def test_errors_are_exceptions_of_their_kind(router):
    with pytest.raises(sy.ConfigError) as bad:
        sy.Client({"deadline": "soon"})
    assert isinstance(bad.value, ValueError) and "deadline" in str(bad.value)
    assert bad.value.kind == "config" and bad.value.retryable is False
    with pytest.raises(TypeError, match="config must be a dict"):
        sy.Client(42)
    with pytest.raises(sy.ConfigError, match="speed"):
        sy.Client({"speed": 3})

    client = sy.Client(router.config(deadline="5s"))
    with pytest.raises(sy.StatusError) as failed:
        client.get("/api/x?status=500")
    assert failed.value.status == 500 and failed.value.kind == "status"
    with pytest.raises(sy.DeadlineExceeded) as late:
        client.get("/api/x?delay_ms=2000", deadline=0.2)
    assert isinstance(late.value, TimeoutError)
    with pytest.raises(ValueError, match="not an HTTP method"):
        client.request("GE T", "/")
    with pytest.raises(sy.InvalidRequest, match="x-bad"):
        client.get("/", headers={"x-bad": "a\nb"})
    with pytest.raises(TypeError, match="body must be bytes"):
        client.post("/", body=42)
    with pytest.raises(TypeError, match="headers must be"):
        client.get("/", headers=7)
    with pytest.raises(TypeError, match="header \"x-a\"'s value must be a str, not int"):
        client.get("/", headers={"x-a": 1})
    with pytest.raises(TypeError, match=r"headers\[0\] must be a \(name, value\) pair"):
        client.get("/", headers=["x-a"])
    with pytest.raises(ValueError, match="deadline"):
        client.get("/", deadline=-1)

    dead = sy.Client({"regions": [{"name": "gone", "endpoints": ["http://127.0.0.1:1"]}], "deadline": "2s"})
    with pytest.raises(sy.ConnectError) as refused:
        dead.get("/")
    assert refused.value.retryable and isinstance(refused.value, ConnectionError)

    session = client.session("/ws/echo")
    assert session.next(timeout=5).kind == "connected"
    with pytest.raises(sy.RequestTimeout):
        session.next(timeout=0.05)
    with pytest.raises(TypeError, match="str .text. or bytes"):
        session.send(42)
    session.send(b"\x01\x02")
    echo = session.next(timeout=5)
    assert echo.kind == "message" and isinstance(echo.data, bytes)
    session.close()
    session.close()  # twice: nothing
    with pytest.raises(sy.SessionClosed):
        session.send("late")
    assert list(session) == [], "iterating a closed session just ends"


def test_the_gil_is_released_while_a_request_waits(router):
    client = sy.Client(router.config())
    done = threading.Event()
    ticks = 0

    def slow():
        client.get("/api/x?delay_ms=500")
        done.set()

    worker = threading.Thread(target=slow)
    worker.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    worker.join()
    assert ticks > 50, f"the main thread ran only {ticks} times during a 500 ms request"


def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4


def test_a_thousand_clients_created_and_freed_keep_memory_flat(router):
    config = router.config()
    for _ in range(100):
        sy.Client(config)
    time.sleep(0.5)  # the warm-up's runtimes finish shutting down
    before = rss_kib()
    for _ in range(1000):
        client = sy.Client(config)
        del client
    time.sleep(0.5)
    grown = rss_kib() - before
    assert grown < 8 * 1024, f"memory grew by {grown} KiB over 1,000 clients"
