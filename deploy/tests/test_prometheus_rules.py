"""Checks deploy/prometheus/switchyard-alerts.yml.

1. The file has the shape Prometheus loads (groups, rules, durations, labels, annotations) and
   each runbook link points at a heading that exists.
2. Every metric, label name and label value the expressions use is one the router really
   exports: against the /metrics of a live `switchyard demo` (two regions, so the region
   gauges exist) after some traffic, a WebSocket session moved by an evacuation and a refused
   admin call; the few metrics that only exist after a rare event or with Redis are listed
   below, and each must have its recording code in server/src.
3. With promtool on the PATH: `promtool check rules`, and a few expressions evaluated on
   synthetic series (a counter born at its first increment, drained pools, Redis down).

Self-contained (no conftest.py). The live part needs target/debug/switchyard, the promtool
part promtool; each is skipped, with the reason, without it.
Run: ~/.cache/switchyard/deploy-venv/bin/pytest deploy/tests/test_prometheus_rules.py -q
"""

import base64
import os
import pathlib
import re
import socket
import subprocess
import time

import pytest
import requests
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
RULES_FILE = ROOT / "deploy" / "prometheus" / "switchyard-alerts.yml"
BINARY = ROOT / "target" / "debug" / "switchyard"
SOURCE = ROOT / "server" / "src"

# Metrics the rules use that a fresh demo does not export, because the router creates them
# only when the event first happens. Each names the file where it is recorded (a hint); the
# test checks that a recording call for it exists in server/src. Registering one at zero at startup makes it appear: then remove
# it from this list (the test fails until then, so the list stays exact).
APPEAR_ONLY_AFTER_EVENT = {
    # a control-plane actor panicked and was restarted
    "switchyard_actor_restarts_total": "server/src/control/guard.rs",
    # a config reload (SIGHUP or POST /admin/v1/reload) with a config file; the demo has none
    "switchyard_config_reloads_total": "server/src/control/reload.rs",
    # a TLS listener's certificates reloaded or refused; the demo has no TLS listener
    "switchyard_tls_reloads_total": "server/src/tls.rs",
    # a request shed at a pool's `max_inflight`; the demo's pools set none
    "switchyard_shed_total": "server/src/policy/shed.rs",
    # a shared (Redis) rate limit could not be decided; the demo has no Redis
    "switchyard_rate_limit_fallbacks_total": "server/src/policy/ratelimit/shared.rs",
    # a canary rollout decision; the demo starts no rollout
    "switchyard_rollout_decisions_total": "server/src/control/rollout/mod.rs",
}

# Gauges that exist only with `[sessions] store = "redis"`. They must NOT be registered at
# zero without Redis: 0 means "down" and would fire SwitchyardSessionStoreDown /
# SwitchyardClusterUnheard on every node that has no Redis at all.
APPEAR_ONLY_WITH_REDIS = {
    "switchyard_session_store_up": "server/src/session/shared.rs",
    "switchyard_cluster_up": "server/src/admin/cluster.rs",
}

SEVERITIES = {"critical", "warning", "info"}
GROUP_KEYS = {"name", "interval", "rules", "limit", "query_offset", "labels"}
RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
# Labels Prometheus adds to every scraped series (and `le` of histogram buckets).
TARGET_LABELS = {"job", "instance"}
DURATION = re.compile(r"^(0|(?=\d)(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?)$")
NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
METRIC_IN_EXPR = re.compile(r"\b(switchyard_[a-z0-9_]+|process_[a-z_]+)\b")
STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')
SELECTOR = re.compile(r"\b(switchyard_[a-z0-9_]+|process_[a-z_]+|up)\s*\{([^}]*)\}")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


# --- the rules file -------------------------------------------------------------------------


def load_rules():
    with open(RULES_FILE, encoding="utf-8") as f:
        return yaml.safe_load(f)


def all_rules():
    return [rule for group in load_rules()["groups"] for rule in group["rules"]]


def without_strings(expr):
    return STRING_LITERAL.sub('""', expr)


def source_text():
    return {p: p.read_text(encoding="utf-8") for p in SOURCE.rglob("*.rs")}


def recording_sites(name, sources):
    """The source files with a metrics::counter!/gauge!/histogram! call naming `name`."""
    call = re.compile(r"metrics::(counter|gauge|histogram)!\(\s*\"" + re.escape(name) + r"\"")
    return {str(p.relative_to(ROOT)): text for p, text in sources.items() if call.search(text)}


def source_histograms(sources):
    """Names recorded with metrics::histogram! anywhere in server/src."""
    return {n for text in sources.values() for n in re.findall(r'histogram!\(\s*"([a-z0-9_]+)"', text)}


def source_label_names(name, sources):
    """Label keys given where `name` is recorded (the `"key" =>` pairs of the macro call)."""
    call = re.compile(r"metrics::(?:counter|gauge|histogram)!\(\s*\"" + re.escape(name) + r"\"")
    labels = set()
    for text in sources.values():
        for m in call.finditer(text):
            tail = text[m.end() : m.end() + 600]
            end = re.search(r"\)\s*\.(increment|set|absolute|record)\(|\);", tail)
            labels |= set(re.findall(r'"([a-z_]+)"\s*=>', tail[: end.start() if end else None]))
    return labels


def slug(heading):
    """GitHub's anchor for a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def balanced(expr):
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    for ch in without_strings(expr):
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack


def test_rules_file_structure():
    doc = load_rules()
    assert isinstance(doc, dict) and set(doc) == {"groups"}, "top level: only `groups`"
    groups = doc["groups"]
    assert isinstance(groups, list) and groups, "`groups` is a non-empty list"
    names = [g.get("name") for g in groups]
    assert all(isinstance(n, str) and n for n in names), "every group has a name"
    assert len(names) == len(set(names)), f"group names are unique: {names}"
    alerts = []
    for group in groups:
        assert set(group) <= GROUP_KEYS, f"group {group['name']}: unknown keys {set(group) - GROUP_KEYS}"
        if "interval" in group:
            assert DURATION.match(str(group["interval"])), f"group {group['name']}: interval"
        assert isinstance(group.get("rules"), list) and group["rules"], f"group {group['name']}: rules"
        for rule in group["rules"]:
            where = f"{group['name']}/{rule.get('alert')}"
            assert set(rule) <= RULE_KEYS, f"{where}: unknown keys {set(rule) - RULE_KEYS}"
            assert isinstance(rule.get("alert"), str) and NAME.match(rule["alert"]), f"{where}: alert name"
            assert isinstance(rule.get("expr"), str) and rule["expr"].strip(), f"{where}: expr"
            assert balanced(rule["expr"]), f"{where}: unbalanced brackets in expr"
            for d in re.findall(r"\[([^\]]*)\]", without_strings(rule["expr"])):
                assert DURATION.match(d), f"{where}: range [{d}] is not a Prometheus duration"
            for d in re.findall(r"\boffset\s+(\S+?)(?=[\s)]|$)", without_strings(rule["expr"])):
                assert DURATION.match(d), f"{where}: offset {d} is not a Prometheus duration"
            for key in ("for", "keep_firing_for"):
                if key in rule:
                    assert isinstance(rule[key], str) and DURATION.match(rule[key]), (
                        f"{where}: `{key}: {rule[key]!r}` is not a Prometheus duration"
                    )
            labels = rule.get("labels") or {}
            assert all(NAME.match(k) and isinstance(v, str) for k, v in labels.items()), f"{where}: labels"
            assert labels.get("severity") in SEVERITIES, f"{where}: severity {labels.get('severity')!r}"
            annotations = rule.get("annotations") or {}
            assert all(NAME.match(k) and isinstance(v, str) for k, v in annotations.items()), f"{where}: annotations"
            for key in ("summary", "description", "runbook_url"):
                assert annotations.get(key, "").strip(), f"{where}: annotations.{key}"
            alerts.append(rule["alert"])
    assert len(alerts) == len(set(alerts)), "alert names are unique"


def test_runbook_links_point_at_existing_headings():
    for rule in all_rules():
        link = rule["annotations"]["runbook_url"]
        path, _, anchor = link.partition("#")
        file = ROOT / path
        assert file.is_file(), f"{rule['alert']}: {path} does not exist"
        if anchor:
            headings = [
                slug(line.lstrip("#"))
                for line in file.read_text(encoding="utf-8").splitlines()
                if line.startswith("#")
            ]
            assert anchor in headings, f"{rule['alert']}: no heading #{anchor} in {path}"


def test_label_values_are_ones_the_router_writes():
    """`label="value"` (and simple `a|b` regexes) name values that appear in server/src."""
    literals = set()
    for text in source_text().values():
        literals |= set(re.findall(r'"([A-Za-z0-9_]+)"', text))
    for rule in all_rules():
        for metric, body in SELECTOR.findall(rule["expr"]):
            if metric == "up":
                continue
            for label, op, value in MATCHER.findall(body):
                if op in ("=~", "!~"):
                    if not re.fullmatch(r"[A-Za-z0-9_|]+", value):
                        continue
                    values = value.split("|")
                else:
                    values = [value]
                for v in values:
                    assert v in literals, f"{rule['alert']}: {metric}{{{label}{op}\"{value}\"}}: no \"{v}\" in server/src"


def test_allow_lists_name_real_recording_code():
    sources = source_text()
    used = {m for rule in all_rules() for m in METRIC_IN_EXPR.findall(without_strings(rule["expr"]))}
    for name, file in {**APPEAR_ONLY_AFTER_EVENT, **APPEAR_ONLY_WITH_REDIS}.items():
        assert name in used, f"{name} is allow-listed but no rule uses it: remove it"
        sites = recording_sites(name, sources)
        assert sites, f"{name}: no metrics::counter!/gauge!/histogram! call records it in server/src (listed at {file})"


def rule_expr(alert):
    return next(r["expr"] for r in all_rules() if r["alert"] == alert)


def promtool():
    import shutil

    path = shutil.which("promtool")
    if not path:
        reason = "promtool is not installed (apt-get install prometheus, or a Prometheus release)"
        print(reason)
        pytest.skip(reason)
    return path


def test_promtool_accepts_the_rules():
    tool = promtool()
    done = subprocess.run([tool, "check", "rules", str(RULES_FILE)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_evaluates_the_tricky_expressions(tmp_path):
    """What a few expressions give on synthetic series (promtool's PromQL engine)."""
    tool = promtool()
    a, b = 'job="switchyard",instance="a"', 'job="switchyard",instance="b"'

    def state(pool, backend, name):
        return f'switchyard_backend_state{{{a},pool="{pool}",backend="{backend}",state="{name}"}}'

    series = [
        # A counter created by its first increment (at 3m) fires the event alert; one
        # registered at zero at startup does not.
        {"series": "switchyard_actor_restarts_total{" + a + ',actor="pool"}', "values": "_ _ _ 1 1 1"},
        {"series": "switchyard_actor_restarts_total{" + b + ',actor="pool"}', "values": "0 0 0 0 0 0"},
        # p1: every backend down -> no backend up; p2: every backend drained -> not alerted
        # (an operator's drain, or a pool a reload removed); p3: one backend up.
        {"series": state("p1", "b1", "down"), "values": "1x10"},
        {"series": state("p1", "b1", "up"), "values": "0x10"},
        {"series": state("p1", "b2", "ejected"), "values": "1x10"},
        {"series": state("p1", "b2", "up"), "values": "0x10"},
        {"series": state("p2", "b3", "drained"), "values": "1x10"},
        {"series": state("p2", "b3", "up"), "values": "0x10"},
        {"series": state("p3", "b4", "up"), "values": "1x10"},
        {"series": state("p3", "b5", "down"), "values": "1x10"},
        # Cluster unheard: on a, because Redis is down (its own alert); on b while Redis is up.
        {"series": "switchyard_cluster_up{" + a + "}", "values": "0x10"},
        {"series": "switchyard_session_store_up{" + a + "}", "values": "0x10"},
        {"series": "switchyard_cluster_up{" + b + "}", "values": "0x10"},
        {"series": "switchyard_session_store_up{" + b + "}", "values": "1x10"},
        # Route r1: 9 ok + 1 failed answer a second = 10 % 5xx.
        {"series": "switchyard_requests_total{" + a + ',route="r1",pool="p",backend="x",status_class="2xx"}', "values": "0+540x10"},
        {"series": "switchyard_requests_total{" + a + ',route="r1",pool="p",backend="x",status_class="5xx"}', "values": "0+60x10"},
    ]
    tests = [
        {
            "interval": "1m",
            "input_series": series,
            "promql_expr_test": [
                {"expr": rule_expr("SwitchyardActorRestarts"), "eval_time": "3m",
                 "exp_samples": [{"labels": 'switchyard_actor_restarts_total{actor="pool",instance="a",job="switchyard"}', "value": 1}]},
                {"expr": rule_expr("SwitchyardPoolNoBackendUp"), "eval_time": "5m",
                 "exp_samples": [{"labels": '{instance="a",job="switchyard",pool="p1"}', "value": 0}]},
                {"expr": rule_expr("SwitchyardBackendsUnhealthy"), "eval_time": "5m",
                 "exp_samples": [{"labels": '{instance="a",job="switchyard",pool="p1"}', "value": 1},
                                 {"labels": '{instance="a",job="switchyard",pool="p3"}', "value": 0.5}]},
                {"expr": rule_expr("SwitchyardClusterUnheard"), "eval_time": "5m",
                 "exp_samples": [{"labels": 'switchyard_cluster_up{instance="b",job="switchyard"}', "value": 0}]},
                {"expr": rule_expr("SwitchyardHigh5xxRate"), "eval_time": "10m",
                 "exp_samples": [{"labels": '{job="switchyard",route="r1"}', "value": 0.1}]},
                {"expr": rule_expr("SwitchyardVeryHigh5xxRate"), "eval_time": "10m", "exp_samples": []},
            ],
        }
    ]
    unit = tmp_path / "unit.yml"
    unit.write_text(yaml.safe_dump({"rule_files": [str(RULES_FILE)], "evaluation_interval": "1m", "tests": tests}))
    done = subprocess.run([tool, "test", "rules", str(unit)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


# --- the live router -------------------------------------------------------------------------


def free_port_pairs(count):
    """`count` ports P, each with P+1 free too (`demo --regions 2` takes port and port + 1)."""
    for _ in range(100):
        held, ports = [], []
        try:
            while len(ports) < count:
                a = socket.socket()
                a.bind(("127.0.0.1", 0))
                held.append(a)
                port = a.getsockname()[1]
                if port >= 65535 or port + 1 in ports or port in (p + 1 for p in ports):
                    continue
                b = socket.socket()
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    b.close()
                    continue
                held.append(b)
                ports.append(port)
            return ports
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no free pair of ports")


def http():
    session = requests.Session()
    session.trust_env = False  # never through a proxy from the environment
    return session


def start_demo(log_path):
    """Starts `switchyard demo --regions 2`; returns (process, listen port, admin port, token)."""
    for attempt in range(3):
        listen, admin = free_port_pairs(2)
        log = open(log_path, "w", encoding="utf-8")
        proc = subprocess.Popen(
            [str(BINARY), "demo", "--listen", f"127.0.0.1:{listen}",
             "--admin-listen", f"127.0.0.1:{admin}", "--regions", "2"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
        )
        log.close()
        client = http()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = client.get(f"http://127.0.0.1:{admin}/readyz", timeout=1).status_code == 200
            except requests.RequestException:
                ready = False
            token = re.search(r"admin token: ([0-9a-f]+)", pathlib.Path(log_path).read_text(errors="replace"))
            if ready and token:
                return proc, listen, admin, token.group(1)
            time.sleep(0.1)
        stop(proc)
        if attempt == 2:
            raise AssertionError("the demo did not become ready:\n" + pathlib.Path(log_path).read_text(errors="replace")[-3000:])
    raise AssertionError("unreachable")


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def ws_open(port, path="/ws/echo"):
    """A raw WebSocket upgrade; returns the socket, the answer's head and what followed it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return sock, head.decode(errors="replace"), rest


def read_close_frame(sock, already):
    """Reads until a WebSocket close frame (opcode 8) arrives; returns its payload."""
    data = already
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if len(data) >= 2 and data[0] & 0x0F == 0x8:
            length = data[1] & 0x7F
            if len(data) >= 2 + length:
                return data[2 : 2 + length]
        if len(data) >= 2 and data[0] & 0x0F != 0x8:
            length = data[1] & 0x7F  # skip a data frame (small ones only here)
            if length < 126 and len(data) >= 2 + length:
                data = data[2 + length :]
                continue
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    raise AssertionError(f"no close frame; got {data[:100]!r}")


def drive_traffic(listen, admin, token):
    client = http()
    base, adm = f"http://127.0.0.1:{listen}", f"http://127.0.0.1:{admin}"
    auth = {"Authorization": f"Bearer {token}"}
    # Requests on every route, a backend's own 503 and the router's own 404.
    for path in ("/api/hello", "/stream/movie?bytes=2000&chunk_bytes=1000&chunk_ms=1",
                 "/browse/x", "/search/x", "/search/x?status=503"):
        assert client.get(base + path, timeout=10).status_code in (200, 503), path
    assert client.get(base + "/nowhere", timeout=5).status_code == 404
    # An admin change without a token: refused (401) and counted.
    assert client.post(f"{adm}/admin/v1/backends/api-1-us-east/drain", timeout=5).status_code == 401
    # A WebSocket session, moved by evacuating its region (a handoff); then a new session is
    # told to go elsewhere (4003) and a request overflows to the other region.
    sock, head, rest = ws_open(listen)
    try:
        assert " 101 " in head.splitlines()[0], head
        r = client.post(f"{adm}/admin/v1/regions/us-east/evacuate", json={"spread_s": 0}, headers=auth, timeout=5)
        assert r.status_code == 202, r.text
        assert b"moved" in read_close_frame(sock, rest)
    finally:
        sock.close()
    try:
        sock, head, rest = ws_open(listen)
        try:
            assert " 101 " in head.splitlines()[0], head
            assert b"region=" in read_close_frame(sock, rest)
        finally:
            sock.close()
        assert client.get(base + "/api/hello", timeout=10).status_code == 200
    finally:
        r = client.post(f"{adm}/admin/v1/regions/us-east/unevacuate", headers=auth, timeout=5)
        assert r.status_code == 200, r.text


def parse_exposition(text):
    """{metric name: {"type": ..., "labels": set of label names}} from Prometheus text."""
    metrics = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            metrics.setdefault(name, {"type": None, "labels": set()})["type"] = kind.strip()
        elif line and not line.startswith("#"):
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s", line)
            if m:
                entry = metrics.setdefault(m.group(1), {"type": None, "labels": set()})
                entry["labels"] |= set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
    return metrics


def metrics_used(rule, histograms):
    """Metric names in the rule's expr, histogram series (_bucket/_sum/_count) as their base."""
    names = set()
    for name in METRIC_IN_EXPR.findall(without_strings(rule["expr"])):
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix) and name[: -len(suffix)] in histograms:
                name = name[: -len(suffix)]
                break
        names.add(name)
    return names


@pytest.fixture(scope="module")
def live_metrics(tmp_path_factory):
    if not BINARY.is_file():
        reason = f"{BINARY} is missing: build it with `cargo build -p switchyard`"
        print(reason)
        pytest.skip(reason)
    proc, listen, admin, token = start_demo(tmp_path_factory.mktemp("demo") / "demo.log")
    try:
        drive_traffic(listen, admin, token)
        rules = all_rules()
        sources = source_text()
        expected_absent = set(APPEAR_ONLY_AFTER_EVENT) | set(APPEAR_ONLY_WITH_REDIS)
        client = http()
        # Some series appear a moment later (log-drop counters at the 5 s metrics upkeep,
        # gauges copied once a second): poll, bounded.
        deadline = time.monotonic() + 20
        while True:
            text = client.get(f"http://127.0.0.1:{admin}/metrics", timeout=5).text
            live = parse_exposition(text)
            histograms = {n for n, m in live.items() if m["type"] == "histogram"}
            histograms |= source_histograms(sources)
            used = set().union(*(metrics_used(r, histograms) for r in rules))
            missing = {m for m in used if m not in live} - expected_absent
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        return {"live": live, "histograms": histograms, "text": text}
    finally:
        stop(proc)


def test_every_metric_in_the_rules_is_exported(live_metrics):
    live, histograms = live_metrics["live"], live_metrics["histograms"]
    used = {}
    for rule in all_rules():
        for name in metrics_used(rule, histograms):
            used.setdefault(name, []).append(rule["alert"])
    absent = {name for name in used if name not in live}
    unexpected = absent - set(APPEAR_ONLY_AFTER_EVENT) - set(APPEAR_ONLY_WITH_REDIS)
    assert not unexpected, "not exported by a live router: " + ", ".join(
        f"{n} (in {', '.join(used[n])})" for n in sorted(unexpected)
    )
    now_exported = (set(APPEAR_ONLY_AFTER_EVENT) | set(APPEAR_ONLY_WITH_REDIS)) - absent
    assert not now_exported, (
        f"{sorted(now_exported)} are exported at startup now: remove them from the allow-lists"
    )


def test_label_names_exist_on_their_metrics(live_metrics):
    live, histograms = live_metrics["live"], live_metrics["histograms"]
    sources = source_text()

    def labels_of(name):
        if name in histograms:
            return live.get(name + "_bucket", {"labels": set()})["labels"] | source_label_names(name, sources) | {"le"}
        if name in live:
            return live[name]["labels"]
        return source_label_names(name, sources)

    for rule in all_rules():
        expr = rule["expr"]
        in_expr = set()
        for metric, body in SELECTOR.findall(expr):
            if metric == "up":
                continue
            base = next((metric[: -len(s)] for s in HISTOGRAM_SUFFIXES
                         if metric.endswith(s) and metric[: -len(s)] in histograms), metric)
            have = labels_of(base)
            for label, _, _ in MATCHER.findall(body):
                assert label in have, f"{rule['alert']}: {metric} has no label {label!r} (it has {sorted(have)})"
        for name in metrics_used(rule, histograms):
            in_expr |= labels_of(name)
        for group in GROUPING.findall(without_strings(expr)):
            for label in (x.strip() for x in group.split(",") if x.strip()):
                assert label in in_expr | TARGET_LABELS, (
                    f"{rule['alert']}: grouping label {label!r} is on none of its metrics ({sorted(in_expr)})"
                )
