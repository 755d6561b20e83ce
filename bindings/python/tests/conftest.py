"""A live router for the tests: two `switchyard-backend` echo backends behind a `switchyard serve`
process, all on free loopback ports, stopped after each test. The binaries come from
SWITCHYARD_BIN_DIR (default: the workspace's target/debug, built by `cargo build`)."""

import json
import os
import pathlib
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
BIN = pathlib.Path(os.environ.get("SWITCHYARD_BIN_DIR", ROOT / "target" / "debug"))
TOKEN = "a-test-admin-token-of-16-bytes+"


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
    def __init__(self, url, admin, backends):
        self.url = url
        self.admin = admin
        self.backends = backends  # id -> port

    def config(self, **extra):
        """A client config for this router."""
        return {"regions": [{"name": "local", "endpoints": [self.url]}], **extra}

    def admin_post(self, path, body):
        req = urllib.request.Request(
            self.admin + path,
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status

    def fail(self, backend, status):
        """Makes `backend` answer every request with `status` (0: normal again)."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.backends[backend]}/admin/fail",
            data=json.dumps({"status": status}).encode(),
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200


@pytest.fixture
def router():
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            backends = {}
            for name in ("echo-1", "echo-2"):
                port = free_port()
                proc = subprocess.Popen(
                    [str(BIN / "switchyard-backend"), "--listen", f"127.0.0.1:{port}", "--id", name, "--threads", "1"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                procs.append(proc)
                wait_port(port, proc, name)
                backends[name] = port
            listen, admin = free_port(), free_port()
            token = pathlib.Path(tmp, "admin.token")
            token.write_text(TOKEN)
            members = ", ".join(
                f'{{ id = "{name}", address = "127.0.0.1:{port}" }}' for name, port in backends.items()
            )
            config = pathlib.Path(tmp, "router.toml")
            config.write_text(
                f'[node]\nlisten = "127.0.0.1:{listen}"\nadmin_listen = "127.0.0.1:{admin}"\nworkers = 1\n'
                f'shutdown_timeout = "1s"\nadmin_token_file = "{token}"\n'
                '[log]\naccess = false\n[limits]\nrate_per_ip = 0\n'
                '[[routes]]\nid = "all"\npath_prefix = "/"\npool = "echo"\nretries = 0\n'
                f'[[pools]]\nid = "echo"\nhealth = {{ kind = "none" }}\nbackends = [{members}]\n'
            )
            proc = subprocess.Popen(
                [str(BIN / "switchyard"), "serve", "--config", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            procs.append(proc)
            wait_port(listen, proc, "switchyard")
            wait_port(admin, proc, "switchyard (admin)")
            yield Router(f"http://127.0.0.1:{listen}", f"http://127.0.0.1:{admin}", backends)
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
