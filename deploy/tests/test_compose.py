"""deploy/compose: the file's services are what its README promises, and — where Docker runs —
the stack comes up and a session made through router A resumes through router B (the same
backend, found through Redis behind Sentinel)."""

import os
import re
import shutil
import subprocess
import uuid

import pytest
import yaml
from websockets.sync.client import connect

from conftest import REPO, free_port, http_get, ready, wait_for

COMPOSE = REPO / "deploy" / "compose" / "docker-compose.yml"
BACKENDS = ["api-1", "api-2", "api-3", "stream-1", "stream-2", "stream-3"]
SENTINELS = ["sentinel-1", "sentinel-2", "sentinel-3"]


def load() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def seconds(duration: str) -> float:
    value, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration).groups()
    return float(value) * {"ms": 0.001, "s": 1, "m": 60}[unit]


def default_of(text: str, variable: str) -> str:
    found = re.search(r"\$\{" + variable + r":-([^}]*)\}", text)
    assert found, f"{variable} has no default in {COMPOSE.name}"
    return found.group(1)


def test_the_file_has_two_routers_redis_with_three_sentinels_and_three_backends_per_pool():
    services = load()["services"]
    assert {"router-a", "router-b", "redis", "redis-replica", *SENTINELS, *BACKENDS} <= set(services)
    for name, service in services.items():
        assert service.get("network_mode") == "host", f"{name}: host networking on loopback"
    for name in ["router-a", "router-b"]:
        router = services[name]
        assert router["entrypoint"][-1].endswith("render-config.sh"), name
        assert router["healthcheck"]["test"][1:3] == ["/usr/local/bin/switchyard", "probe"], name
        assert router["healthcheck"]["test"][3].endswith("/readyz"), name
    for name in BACKENDS:
        assert services[name]["entrypoint"] == ["/usr/local/bin/switchyard-backend"], name
    # Every port is a variable with a default, so tests and a machine already running Redis on
    # 6379 can move them; no fixed port is written anywhere else.
    text = COMPOSE.read_text()
    for line in text.splitlines():
        if "127.0.0.1:" in line and not line.lstrip().startswith("#"):
            assert re.search(r"127\.0\.0\.1:\$\{SY_[A-Z0-9_]+:-\d+\}", line), line


def test_a_stop_gets_longer_than_the_nodes_shutdown_window():
    text = COMPOSE.read_text()
    window = seconds(default_of(text, "SY_SHUTDOWN_DELAY")) + seconds(default_of(text, "SY_SHUTDOWN_TIMEOUT"))
    for name in ["router-a", "router-b"]:
        grace = seconds(load()["services"][name]["stop_grace_period"])
        assert grace > window, f"{name}: stop_grace_period {grace} s <= shutdown window {window} s"


def test_the_rendered_config_is_valid(tmp_path):
    """render-config.sh's TOML, with the file's default ports, passes `switchyard check-config`."""
    from conftest import binary

    exe = binary("switchyard")
    text = COMPOSE.read_text()
    env = {
        var: default_of(text, var)
        for var in sorted(set(re.findall(r"\$\{(SY_[A-Z0-9_]+):-", text)))
    }
    env.update(SY_PUBLIC_PORT="8080", SY_ADMIN_PORT="9901", PATH=os.environ["PATH"])
    script = (REPO / "deploy" / "compose" / "render-config.sh").read_text()
    # Render only: the script's last lines check and serve with the image's binary.
    render = script.split("/usr/local/bin/switchyard check-config")[0]
    render = render.replace("/tmp/switchyard.toml", str(tmp_path / "switchyard.toml"))
    subprocess.run(["sh", "-c", render], env=env, check=True)
    checked = subprocess.run([exe, "check-config", tmp_path / "switchyard.toml"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "3 routes, 2 pools, 6 backends" in checked.stdout, checked.stdout


@pytest.fixture
def stack(docker, switchyard_image, redis_image):
    """The Compose stack on free ports, under a project name of its own; taken down after."""
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is missing (apt-get install docker-compose)")
    ports = {
        var: str(free_port())
        for var in sorted(set(re.findall(r"\$\{(SY_[A-Z0-9_]+_PORT):-", COMPOSE.read_text())))
    }
    env = dict(
        os.environ,
        **ports,
        SWITCHYARD_IMAGE=switchyard_image,
        REDIS_IMAGE=redis_image,
        SWITCHYARD_ADMIN_TOKEN="a" * 32,
        SWITCHYARD_COOKIE_KEY="k" * 64,
        SY_SHUTDOWN_DELAY="1s",
        SY_SHUTDOWN_TIMEOUT="5s",
        SY_SENTINEL_DOWN_AFTER_MS="1000",
        # docker-compose 1.29 speaks to the engine itself; it needs no buildx.
        COMPOSE_PROJECT_NAME=f"sy{uuid.uuid4().hex[:8]}",
    )

    def compose(*args, check=True):
        done = subprocess.run(
            ["docker-compose", "-f", COMPOSE, *args], env=env, capture_output=True, text=True, timeout=300
        )
        if check and done.returncode != 0:
            pytest.fail(f"docker-compose {' '.join(args)} failed:\n{done.stderr}")
        return done

    compose("up", "-d")
    try:
        yield ports, compose
    finally:
        logs = compose("logs", "--no-color", "router-a", "router-b", check=False)
        print(logs.stdout[-8000:])
        compose("down", "-t", "10", check=False)


def store_up(admin: str) -> bool:
    status, _, body = http_get(f"http://{admin}/metrics")
    return status == 200 and re.search(rb"^switchyard_session_store_up 1", body, re.M) is not None


def test_a_session_made_through_router_a_resumes_through_router_b(stack):
    ports, _ = stack
    a = f"127.0.0.1:{ports['SY_ROUTER_A_PORT']}"
    b = f"127.0.0.1:{ports['SY_ROUTER_B_PORT']}"
    for admin in [ports["SY_ROUTER_A_ADMIN_PORT"], ports["SY_ROUTER_B_ADMIN_PORT"]]:
        admin = f"127.0.0.1:{admin}"
        wait_for(f"router {admin} ready", lambda: ready(admin), within=60)
        wait_for(f"router {admin}: session store up through Sentinel", lambda: store_up(admin), within=60)

    # HTTP: a sticky stream session placed by A is found by B in Redis.
    status, headers, _ = http_get(f"http://{a}/stream/segment-1")
    assert status == 200
    token, backend = headers["X-Switchyard-Session"], headers["X-Backend-Id"]
    assert token and backend.startswith("stream-"), headers
    for n in range(5):
        status, headers, _ = http_get(f"http://{b}/stream/segment-{n}", {"X-Switchyard-Session": token})
        assert status == 200
        assert headers["X-Backend-Id"] == backend, f"request {n} through B went to another backend"

    # WebSocket: a session opened through A reconnects through B to the same backend.
    with connect(f"ws://{a}/ws/echo", open_timeout=10) as ws:
        ws_token = ws.response.headers["X-Switchyard-Session"]
        ws.send("one")
        first = ws.recv(timeout=10)
    with connect(
        f"ws://{b}/ws/echo", open_timeout=10, additional_headers={"X-Switchyard-Session": ws_token}
    ) as ws:
        ws.send("two")
        again = ws.recv(timeout=10)
    assert first.split(":")[0] == again.split(":")[0], f"resumed on another backend: {first!r} then {again!r}"
