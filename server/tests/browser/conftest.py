"""A router for the console's browser tests: pools `api` and `ws` of two `switchyard-backend`s
each, behind a `switchyard serve` process with an admin token, all on free loopback ports; and
a headless Chromium (Debian's) driven by Playwright. Binaries from SWITCHYARD_BIN_DIR (default:
target/debug); screenshots go to CONSOLE_ARTIFACTS (default: target/console-artifacts)."""

import os
import pathlib
import socket
import subprocess
import tempfile
import time

import pytest
from playwright.sync_api import sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[3]
BIN = pathlib.Path(os.environ.get("SWITCHYARD_BIN_DIR", ROOT / "target" / "debug"))
ARTIFACTS = pathlib.Path(os.environ.get("CONSOLE_ARTIFACTS", ROOT / "target" / "console-artifacts"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TOKEN = "a-console-test-admin-token-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, within=20.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {within} s")


class Router:
    def __init__(self, url, admin, log):
        self.url = url
        self.admin = admin
        self.log = log

    def log_text(self):
        return pathlib.Path(self.log).read_text(errors="replace")


@pytest.fixture
def router():
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            pools = {}
            for pool in ("api", "ws"):
                members = []
                for i in (1, 2):
                    name, port = f"{pool}-{i}", free_port()
                    proc = subprocess.Popen(
                        [str(BIN / "switchyard-backend"), "--listen", f"127.0.0.1:{port}", "--id", name, "--threads", "1"],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    procs.append(proc)
                    wait_port(port, proc, name)
                    members.append(f'{{ id = "{name}", address = "127.0.0.1:{port}" }}')
                pools[pool] = ", ".join(members)
            listen, admin = free_port(), free_port()
            token = pathlib.Path(tmp, "admin.token")
            token.write_text(TOKEN)
            config = pathlib.Path(tmp, "router.toml")
            config.write_text(
                f'[node]\nlisten = "127.0.0.1:{listen}"\nadmin_listen = "127.0.0.1:{admin}"\nworkers = 1\n'
                f'shutdown_timeout = "1s"\nadmin_token_file = "{token}"\n'
                '[log]\naccess = false\n[limits]\nrate_per_ip = 0\nmax_connections_per_ip = 0\n'
                '[[routes]]\nid = "api"\npath_prefix = "/api"\npool = "api"\n'
                '[[routes]]\nid = "ws"\npath_prefix = "/ws"\npool = "ws"\n'
                f'[[pools]]\nid = "api"\nhealth = {{ kind = "none" }}\nbackends = [{pools["api"]}]\n'
                f'[[pools]]\nid = "ws"\nalgorithm = "least_connections"\nhealth = {{ kind = "none" }}\nbackends = [{pools["ws"]}]\n'
            )
            log = pathlib.Path(tmp, "router.log")
            with open(log, "w") as out:
                proc = subprocess.Popen(
                    [str(BIN / "switchyard"), "serve", "--config", str(config)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            procs.append(proc)
            wait_port(listen, proc, "switchyard")
            wait_port(admin, proc, "switchyard (admin)")
            yield Router(f"http://127.0.0.1:{listen}", f"http://127.0.0.1:{admin}", log)
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()


@pytest.fixture
def page(router):
    """A fresh headless Chromium page; fails the test on any console error or page error, and
    on any request to another origin than the router's admin listener."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        pg.on(
            "request",
            lambda r: problems.append(f"request outside the admin listener: {r.url}")
            if not r.url.startswith(router.admin + "/")
            else None,
        )
        yield pg
        browser.close()
    assert not problems, problems
