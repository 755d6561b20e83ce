"""Shared helpers of the deploy tests: the router's binaries, free loopback ports, bounded
waits, and Docker (the engine, a local Debian base image, the Switchyard image).

Docker tests skip, with the reason printed, only when no Docker engine answers on this
machine (`.ci/deploy-tests.sh` starts one where it can). No registry is needed: the base image
is made with `debootstrap` and `docker import`, and the Switchyard image is the Dockerfile's
`prebuilt` target over the debug binaries that `cargo test` built.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
BIN = TARGET / os.environ.get("SWITCHYARD_PROFILE", "debug")

BASE_IMAGE = "switchyard-test/debian:bookworm"
REDIS_IMAGE = "switchyard-test/redis:7"
SWITCHYARD_IMAGE = "switchyard:ci"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "switchyard"


def binary(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{path} is missing: build it first (cargo build --workspace --bins)")
    return path


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check, within: float = 30.0, every: float = 0.1):
    """Calls `check` until it returns something truthy; fails naming `what` after `within` s."""
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        try:
            found = check()
            if found:
                return found
        except Exception as err:  # noqa: BLE001 - the last error is reported on timeout
            last = err
        time.sleep(every)
    pytest.fail(f"{what}: not within {within:.0f} s (last error: {last!r})")


def http_get(url: str, headers=None, timeout: float = 5.0):
    """(status, headers (case-insensitive), body) of a GET; HTTP errors are answers too."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def ready(admin: str) -> bool:
    return http_get(f"http://{admin}/readyz", timeout=2)[0] == 200


class Process:
    """A child process stopped (SIGTERM, then SIGKILL) at the end of the test."""

    def __init__(self, args, **kwargs):
        self.args = [str(a) for a in args]
        self.proc = subprocess.Popen(self.args, **kwargs)

    def stop(self, within: float = 10.0):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(within)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def processes():
    started = []

    def start(args, **kwargs):
        proc = Process(args, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in reversed(started):
        proc.stop()


@pytest.fixture
def backends(processes):
    """Starts `switchyard-backend`s on free ports: `backends(["b1", "b2"])` → their addresses."""
    exe = binary("switchyard-backend")

    def start(ids):
        addrs = []
        for id_ in ids:
            addr = f"127.0.0.1:{free_port()}"
            processes([exe, "--listen", addr, "--id", id_])
            addrs.append(addr)
        for addr in addrs:
            wait_for(f"backend {addr}", lambda a=addr: http_get(f"http://{a}/health")[0] == 200)
        return addrs

    return start


# ---- Docker ------------------------------------------------------------------------------


def docker_cli() -> str | None:
    """A docker CLI that builds with BuildKit without the buildx plugin (Debian's docker.io
    client does; a newer client without buildx does not), and whose engine answers."""
    candidates = [os.environ.get("DOCKER"), "/usr/bin/docker", shutil.which("docker")]
    for cli in [c for c in candidates if c and Path(c).exists()]:
        if subprocess.run([cli, "info"], capture_output=True).returncode == 0:
            return cli
    return None


class Docker:
    def __init__(self, cli: str):
        self.cli = cli
        self.env = dict(os.environ, DOCKER_BUILDKIT="1")

    def run(self, *args, check=True, capture=True, input=None, timeout=600):
        done = subprocess.run(
            [self.cli, *map(str, args)],
            capture_output=capture,
            text=True,
            env=self.env,
            input=input,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            pytest.fail(f"docker {' '.join(map(str, args))} failed ({done.returncode}):\n{done.stderr}")
        return done

    def has_image(self, name: str) -> bool:
        return self.run("image", "inspect", name, check=False).returncode == 0

    def build(self, tag: str, context, dockerfile=None, target=None, build_args=None, stdin=None):
        args = ["build", "-q", "--network", "host", "-t", tag]
        if dockerfile:
            args += ["-f", dockerfile]
        if target:
            args += ["--target", target]
        for key, value in (build_args or {}).items():
            args += ["--build-arg", f"{key}={value}"]
        self.run(*args, context, input=stdin)


@pytest.fixture(scope="session")
def docker():
    cli = docker_cli()
    if cli is None:
        reason = "no Docker engine answers here (`docker info` fails): Docker steps skipped"
        print(f"\nSKIPPED: {reason}")
        pytest.skip(reason)
    return Docker(cli)


@pytest.fixture(scope="session")
def base_image(docker):
    """A minimal Debian bookworm image, made locally (no registry): `debootstrap` once,
    kept as a tarball in the cache, then `docker import`."""
    if not docker.has_image(BASE_IMAGE):
        tarball = CACHE / "bookworm-minbase.tar"
        if not tarball.exists():
            if shutil.which("debootstrap") is None:
                pytest.fail("debootstrap is missing (apt-get install debootstrap)")
            CACHE.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=CACHE) as root:
                subprocess.run(
                    ["debootstrap", "--variant=minbase", "--include=ca-certificates",
                     "bookworm", root, "http://deb.debian.org/debian"],
                    check=True, capture_output=True, timeout=600,
                )
                for junk in ["var/cache/apt/archives", "var/lib/apt/lists"]:
                    for f in (Path(root) / junk).glob("*"):
                        if f.is_file():
                            f.unlink()
                partial = tarball.with_suffix(".partial")
                subprocess.run(["tar", "-C", root, "-cf", partial, "."], check=True)
                partial.rename(tarball)
        with open(tarball, "rb") as f:
            done = subprocess.run([docker.cli, "import", "-", BASE_IMAGE], stdin=f, capture_output=True)
        if done.returncode != 0:
            pytest.fail(f"docker import failed: {done.stderr.decode()}")
    return BASE_IMAGE


@pytest.fixture(scope="session")
def switchyard_image(docker, base_image, tmp_path_factory):
    """The Dockerfile's `prebuilt` target over this build's binaries, on the local base."""
    context = tmp_path_factory.mktemp("image")
    for name in ["switchyard", "switchyard-backend"]:
        shutil.copy2(binary(name), context / name)
    docker.build(
        SWITCHYARD_IMAGE,
        context,
        dockerfile=REPO / "deploy" / "Dockerfile",
        target="prebuilt",
        build_args={"RUNTIME_BASE": base_image},
    )
    return SWITCHYARD_IMAGE


@pytest.fixture(scope="session")
def redis_image(docker, base_image):
    """Debian's redis-server and redis-sentinel on the local base (the Compose file's
    `REDIS_IMAGE`; with a registry it is the official `redis` image)."""
    if not docker.has_image(REDIS_IMAGE):
        dockerfile = (
            f"FROM {base_image}\n"
            "RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
            "--no-install-recommends redis-server redis-sentinel >/dev/null "
            "&& rm -rf /var/lib/apt/lists/*\n"
        )
        docker.build(REDIS_IMAGE, "-", stdin=dockerfile)
    return REDIS_IMAGE
