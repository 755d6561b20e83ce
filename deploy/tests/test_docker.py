"""The container image as an operator runs it: built from the Dockerfile, config from a mounted
volume, host networking on loopback; it becomes healthy and ready, proxies a request and a
WebSocket session, and on `docker stop` drains — the session is told 4001 — and exits 0 within
its shutdown window."""

import json
import threading
import time
import uuid

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import free_port, http_get, ready, wait_for

SHUTDOWN_DELAY = 1.0
SHUTDOWN_TIMEOUT = 10.0
# docker stop's own grace: longer than the node's shutdown window, as the docs tell operators.
STOP_GRACE = 30
# What a loaded 2-core machine may add on top of the window (container teardown included).
MARGIN = 10.0


def router_config(listen: str, admin: str, backend: str) -> str:
    return f"""
[node]
region = "local"
listen = "{listen}"
admin_listen = "{admin}"
shutdown_delay = "{SHUTDOWN_DELAY:.0f}s"
shutdown_timeout = "{SHUTDOWN_TIMEOUT:.0f}s"
shutdown_spread = "1s"

[[routes]]
id = "api"
path_prefix = "/api"
pool = "app"

[[routes]]
id = "ws"
path_prefix = "/ws"
pool = "app"

[[pools]]
id = "app"
backends = [{{ id = "app-1", address = "{backend}" }}]
"""


@pytest.fixture
def container(docker, switchyard_image, backends, tmp_path):
    """A router container over one test backend; removed at the end."""
    [backend] = backends(["app-1"])
    listen, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    (config_dir / "switchyard.toml").write_text(router_config(listen, admin, backend))
    config_dir.chmod(0o755)
    (config_dir / "switchyard.toml").chmod(0o644)
    name = f"switchyard-test-{uuid.uuid4().hex[:8]}"
    docker.run(
        "run", "-d", "--name", name, "--network", "host",
        "-v", f"{config_dir}:/etc/switchyard:ro",
        "-e", "SWITCHYARD_ADMIN_TOKEN=" + "t" * 32,
        "-e", f"SWITCHYARD_HEALTH_URL=http://{admin}/healthz",
        "--health-interval", "1s", "--health-start-period", "1s",
        switchyard_image,
    )
    try:
        yield name, listen, admin
    finally:
        logs = docker.run("logs", name, check=False)
        print(f"--- container {name} stdout:\n{logs.stdout}\n--- stderr:\n{logs.stderr}")
        docker.run("rm", "-f", name, check=False)


def inspect(docker, name: str) -> dict:
    return json.loads(docker.run("inspect", name).stdout)[0]


def stop(docker, name: str) -> float:
    """docker stop: SIGTERM, the node's paced drain, exit. How long it took, in seconds."""
    started = time.monotonic()
    docker.run("stop", "-t", STOP_GRACE, name, timeout=STOP_GRACE + 30)
    return time.monotonic() - started


def test_the_image_serves_and_drains_its_sessions_on_docker_stop(docker, container):
    name, listen, admin = container

    # Up: the admin listener says ready, and Docker's own health check (switchyard probe,
    # no curl in the image) says healthy.
    wait_for(f"{admin}/readyz from the container", lambda: ready(admin), within=30)
    wait_for(
        "Docker health check `healthy`",
        lambda: inspect(docker, name)["State"].get("Health", {}).get("Status") == "healthy",
        within=30,
    )
    config = inspect(docker, name)["Config"]
    assert config["User"] == "10001:10001", "the image runs as a non-root user"
    assert config["StopSignal"] == "SIGTERM"

    # A request and a WebSocket session through the router.
    status, headers, body = http_get(f"http://{listen}/api/hello")
    assert status == 200, body
    assert headers.get("X-Backend-Id") == "app-1", headers
    with connect(f"ws://{listen}/ws/echo", open_timeout=10) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "app-1: hello"
        closed = {}

        def read_until_closed():
            try:
                while True:
                    ws.recv(timeout=SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT + MARGIN)
            except ConnectionClosed as err:
                closed["code"] = err.rcvd.code if err.rcvd else None
                closed["reason"] = err.rcvd.reason if err.rcvd else None
            except TimeoutError:
                closed["code"] = "no close before the deadline"

        reader = threading.Thread(target=read_until_closed)
        reader.start()
        took = stop(docker, name)
        reader.join(timeout=STOP_GRACE)

    print(f"docker stop took {took:.2f} s; the session was closed with {closed}")
    assert closed.get("code") == 4001, f"the session was not told to reconnect: {closed}"
    state = inspect(docker, name)["State"]
    assert state["ExitCode"] == 0, f"the container exited {state['ExitCode']}: {state}"
    assert not state["OOMKilled"]
    window = SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT
    assert took < window + MARGIN, f"docker stop took {took:.1f} s; the window is {window:.0f} s"
