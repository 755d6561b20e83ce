"""The Kubernetes manifests (deploy/k8s): each overlay renders with `kubectl kustomize`, every
rendered object is valid against the Kubernetes API's schemas (kubernetes-validate, strict, for
a pinned Kubernetes version, offline), and the objects fit the router: probes on the admin
listener at paths the admin API documents, a preStop pause and a grace period longer than the
configured stop, a non-root read-only container, zone spreading, memory for the sessions a pod
is sized for, and a config that uses only documented keys.

Self-contained (no fixtures from conftest.py). Skips, with the reason printed, only when
kubectl is missing.
"""

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
CONFIG_MD = REPO / "docs" / "CONFIG.md"
ADMIN_OPENAPI = REPO / "docs" / "admin-openapi.yaml"

# The Kubernetes version whose schemas the objects must satisfy (kubernetes-validate ships
# them; nothing is downloaded).
KUBERNETES_VERSION = "1.30"

BASE, DEV, PROD = "base", "overlays/dev", "overlays/prod"
RENDERED = [BASE, DEV, PROD]

CONFIG_PATH = "/etc/switchyard/switchyard.toml"
# Sysctls the kubelet allows without --allowed-unsafe-sysctls (Kubernetes' "safe" set).
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
# Memory per pod (docs/BENCHMARKS.md, "What 100,000 sessions on one node would need"): per
# idle session 4.5 KiB of router memory and two sockets at 3.7 KiB of kernel memory; per pod
# ~40 MiB of process and ~57 MiB of log queues. The request must be this with 50% to spare.
KIB_PER_SESSION = 4.5 + 2 * 3.7
MIB_PER_POD = 100
HEADROOM = 1.5
# Node defaults docs/CONFIG.md gives for the stop.
DEFAULT_SHUTDOWN_DELAY = "5s"
DEFAULT_SHUTDOWN_TIMEOUT = "30s"
DEFAULT_SHUTDOWN_SPREAD = "5s"


# ---- rendering ---------------------------------------------------------------------------

_cache: dict[str, list[dict]] = {}


def render(which: str) -> list[dict]:
    """The objects `kubectl kustomize` makes of deploy/k8s/<which> (rendered once a run)."""
    if which not in _cache:
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            reason = "kubectl is not on PATH: the Kubernetes manifests cannot be rendered"
            print(f"\nSKIPPED: {reason}")
            pytest.skip(reason)
        done = subprocess.run(
            [kubectl, "kustomize", str(K8S / which)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"kubectl kustomize {which} failed:\n{done.stderr}"
        _cache[which] = [d for d in yaml.safe_load_all(done.stdout) if d]
    return _cache[which]


def objects(which: str, kind: str) -> list[dict]:
    return [d for d in render(which) if d["kind"] == kind]


def one(which: str, kind: str) -> dict:
    found = objects(which, kind)
    assert len(found) == 1, f"{which}: {len(found)} {kind} objects, expected 1"
    return found[0]


def pod_spec(which: str) -> dict:
    return one(which, "Deployment")["spec"]["template"]["spec"]


def router(which: str) -> dict:
    [container] = [c for c in pod_spec(which)["containers"] if c["name"] == "switchyard"]
    return container


def config_text(which: str) -> str:
    [cm] = [c for c in objects(which, "ConfigMap") if "switchyard.toml" in c.get("data", {})]
    return cm["data"]["switchyard.toml"]


def config(which: str) -> dict:
    return tomllib.loads(config_text(which))


def seconds(duration: str) -> float:
    """A Switchyard duration ("250ms", "10s", "5m", "2h") in seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", duration.strip())
    assert m, f"not a duration: {duration!r}"
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    return float(m.group(1)) * scale


def mebibytes(quantity: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(quantity))
    assert m, f"not a memory quantity: {quantity!r}"
    scale = {
        None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
        "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    }[m.group(2)]
    return float(m.group(1)) * scale / 2**20


def cpus(quantity) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def port_number(container: dict, port) -> int:
    """A probe's or Service's port (a number or a container port's name) as a number."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container["ports"] if "name" in p}
    assert port in named, f"no container port named {port!r} (have {sorted(named)})"
    return named[port]


def listen_port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def pod_labels(which: str) -> dict:
    return one(which, "Deployment")["spec"]["template"]["metadata"]["labels"]


def selects_router(which: str, match_labels: dict) -> bool:
    labels = pod_labels(which)
    return bool(match_labels) and all(labels.get(k) == v for k, v in match_labels.items())


# ---- every rendered object is a valid Kubernetes object -----------------------------------


@pytest.mark.parametrize("which", RENDERED)
def test_every_object_is_valid_for_the_pinned_kubernetes_version(which):
    docs = render(which)
    assert docs, f"{which} rendered nothing"
    for doc in docs:
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            where = "/".join(str(p) for p in err.path)
            pytest.fail(f"{which}: {name} is invalid at {where or '(top)'}: {err.message}")
        except kubernetes_validate.SchemaNotFoundError as err:
            pytest.fail(f"{which}: {name}: {err.message}")


def test_the_validator_refuses_a_bad_object():
    """The validation above checks something: a misspelt field and a wrong type are refused."""
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "x", "image": "x", "readinesProbe": {}}]},
            },
        },
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)
    bad["spec"]["template"]["spec"]["containers"][0] = {"name": "x", "image": "x", "ports": [{"containerPort": "80"}]}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


# ---- the container ------------------------------------------------------------------------


@pytest.mark.parametrize("which", RENDERED)
def test_the_router_serves_the_mounted_config(which):
    container = router(which)
    assert container["image"].split("/")[-1].startswith("switchyard:")
    command = container.get("command", []) + container.get("args", [])
    assert command[-3:] == ["serve", "--config", CONFIG_PATH], command
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(which)["volumes"]}
    [config_mount] = [m for m in mounts.values() if m["mountPath"] == str(Path(CONFIG_PATH).parent)]
    assert "subPath" not in config_mount, "a subPath mount never sees an edited ConfigMap"
    config_map = volumes[config_mount["name"]]["configMap"]["name"]
    assert config_map in {c["metadata"]["name"] for c in objects(which, "ConfigMap")}

    node = config(which)["node"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["public"] == listen_port(node["listen"]) == 8080
    assert ports["admin"] == listen_port(node["admin_listen"]) == 9901
    assert node["admin_listen"].startswith("0.0.0.0:"), "the kubelet must reach the admin listener"


@pytest.mark.parametrize("which", RENDERED)
def test_probes_are_on_the_admin_listener_at_documented_paths(which):
    container = router(which)
    admin = listen_port(config(which)["node"]["admin_listen"])
    api_paths = yaml.safe_load(ADMIN_OPENAPI.read_text())["paths"]
    for probe, path in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]:
        get = container[probe]["httpGet"]
        assert get["path"] == path, f"{probe} must GET {path}"
        assert port_number(container, get["port"]) == admin, f"{probe} must probe the admin port"
        assert get.get("scheme", "HTTP") == "HTTP"
        assert path in api_paths, f"{path} is not in docs/admin-openapi.yaml"
        assert "get" in api_paths[path]


def prestop_seconds(container: dict) -> float:
    hook = container["lifecycle"]["preStop"]
    assert "exec" in hook, "the preStop hook must be an exec"
    command = hook["exec"]["command"]
    assert command[0] in ("sleep", "/bin/sleep", "/usr/bin/sleep"), command
    assert len(command) == 2, command
    return float(command[1])


@pytest.mark.parametrize("which", RENDERED)
def test_the_grace_period_outlasts_the_prestop_pause_and_the_configured_stop(which):
    node = config(which)["node"]
    delay = seconds(node.get("shutdown_delay", DEFAULT_SHUTDOWN_DELAY))
    timeout = seconds(node.get("shutdown_timeout", DEFAULT_SHUTDOWN_TIMEOUT))
    spread = seconds(node.get("shutdown_spread", DEFAULT_SHUTDOWN_SPREAD))
    pause = prestop_seconds(router(which))
    grace = pod_spec(which)["terminationGracePeriodSeconds"]
    assert pause >= 3, "the preStop pause must give endpoint lists time to drop the pod"
    assert spread <= timeout / 2, "shutdown_spread is cut to half of shutdown_timeout"
    assert grace > pause + delay + timeout, (
        f"{which}: grace {grace} s ≤ preStop {pause} + shutdown_delay {delay} + "
        f"shutdown_timeout {timeout}: the kubelet would kill the router mid-drain"
    )
    assert grace - (pause + delay + timeout) >= 10, "leave a margin for the process's exit"


@pytest.mark.parametrize("which", RENDERED)
def test_the_router_runs_unprivileged_on_a_read_only_root(which):
    pod = pod_spec(which).get("securityContext", {})
    container = router(which).get("securityContext", {})
    merged = {**pod, **container}
    assert merged.get("runAsNonRoot") is True
    assert merged.get("runAsUser", 1) != 0
    assert container.get("readOnlyRootFilesystem") is True
    assert container.get("allowPrivilegeEscalation") is False
    assert "ALL" in container.get("capabilities", {}).get("drop", [])
    assert merged.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    assert pod_spec(which).get("automountServiceAccountToken") is False


@pytest.mark.parametrize("which", RENDERED)
def test_only_safe_sysctls_and_a_wide_port_range(which):
    sysctls = {s["name"]: s["value"] for s in pod_spec(which)["securityContext"].get("sysctls", [])}
    unsafe = set(sysctls) - SAFE_SYSCTLS
    assert not unsafe, f"{which}: {unsafe} need --allowed-unsafe-sysctls on every node"
    low, high = map(int, sysctls["net.ipv4.ip_local_port_range"].split())
    assert high - low >= 60000, "router→backend connections need ~64,000 ephemeral ports"


@pytest.mark.parametrize("which", RENDERED)
def test_pods_spread_over_zones(which):
    spread = {c["topologyKey"]: c for c in pod_spec(which)["topologySpreadConstraints"]}
    zone = spread.get("topology.kubernetes.io/zone")
    assert zone, "no topologySpreadConstraints over topology.kubernetes.io/zone"
    assert zone["maxSkew"] == 1
    assert selects_router(which, zone["labelSelector"]["matchLabels"])
    if which == PROD:
        assert zone["whenUnsatisfiable"] == "DoNotSchedule"


@pytest.mark.parametrize("which", RENDERED)
def test_memory_fits_the_sessions_a_pod_is_sized_for(which):
    deployment = one(which, "Deployment")
    sessions = int(deployment["metadata"]["annotations"]["switchyard/sessions-per-pod"])
    resources = router(which)["resources"]
    request = mebibytes(resources["requests"]["memory"])
    limit = mebibytes(resources["limits"]["memory"])
    need = MIB_PER_POD + sessions * KIB_PER_SESSION / 1024
    assert request >= HEADROOM * need, (
        f"{which}: {request:.0f} MiB requested for {sessions} sessions; "
        f"they need ~{need:.0f} MiB idle, so at least {HEADROOM * need:.0f} MiB"
    )
    assert limit == request, "memory request = limit: a router is never overcommitted"
    cpu_limit = cpus(resources["limits"]["cpu"])
    assert cpu_limit >= 1 and cpu_limit == int(cpu_limit), "one worker per whole CPU of limit"


# ---- Services, disruption budget, autoscaler -----------------------------------------------


@pytest.mark.parametrize("which", RENDERED)
def test_services_reach_the_public_and_admin_ports(which):
    container = router(which)
    by_target = {}
    for service in objects(which, "Service"):
        spec = service["spec"]
        assert selects_router(which, spec["selector"])
        if "externalTrafficPolicy" in spec:
            assert spec.get("type") in ("LoadBalancer", "NodePort")
        for port in spec["ports"]:
            by_target[port_number(container, port["targetPort"])] = (service, port)
    assert 8080 in by_target, "no Service for the public port"
    assert 9901 in by_target, "no Service for the admin port"
    public, admin = by_target[8080][0], by_target[9901][0]
    assert public["metadata"]["name"] != admin["metadata"]["name"], "admin needs its own Service"
    assert admin["spec"].get("type", "ClusterIP") == "ClusterIP", "the admin API stays inside"


@pytest.mark.parametrize("which", RENDERED)
def test_the_network_policy_keeps_the_admin_port_in(which):
    for policy in objects(which, "NetworkPolicy"):
        assert selects_router(which, policy["spec"]["podSelector"]["matchLabels"])
        for rule in policy["spec"].get("ingress", []):
            ports = {p.get("port") for p in rule.get("ports", [])}
            if "admin" in ports or 9901 in ports:
                assert rule.get("from"), "the admin port is open to every source"


def test_prod_has_a_disruption_budget_and_an_autoscaler():
    pdb = one(PROD, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert selects_router(PROD, pdb["spec"]["selector"]["matchLabels"])
    assert pdb["spec"].get("maxUnavailable") == 1 or "minAvailable" in pdb["spec"]

    hpa = one(PROD, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    deployment = one(PROD, "Deployment")
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 3
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    [cpu] = [m for m in hpa["spec"]["metrics"] if m["type"] == "Resource"]
    assert cpu["resource"]["name"] == "cpu"
    assert cpu["resource"]["target"]["type"] == "Utilization"
    # The autoscaler owns the count: a fixed `replicas` would be re-applied over it.
    assert "replicas" not in deployment["spec"]
    assert "requests" in router(PROD)["resources"] and "cpu" in router(PROD)["resources"]["requests"]


def test_prod_is_larger_than_dev():
    dev, prod = router(DEV)["resources"], router(PROD)["resources"]
    assert mebibytes(prod["requests"]["memory"]) > mebibytes(dev["requests"]["memory"])
    assert cpus(prod["requests"]["cpu"]) > cpus(dev["requests"]["cpu"])


def test_dev_is_one_replica_without_an_autoscaler():
    assert one(DEV, "Deployment")["spec"]["replicas"] == 1
    assert not objects(DEV, "HorizontalPodAutoscaler")


# ---- secrets ---------------------------------------------------------------------------------


def secret_files(which: str) -> tuple[str, str, dict]:
    """(mount path, Secret name, the config's secret file keys → paths)."""
    container = router(which)
    volumes = {v["name"]: v for v in pod_spec(which)["volumes"]}
    [(mount, secret)] = [
        (m["mountPath"], volumes[m["name"]]["secret"]["secretName"])
        for m in container["volumeMounts"]
        if "secret" in volumes[m["name"]]
    ]
    cfg = config(which)
    files = {
        "node.admin_token_file": cfg["node"].get("admin_token_file"),
        "sessions.cookie_key_file": cfg["sessions"].get("cookie_key_file"),
    }
    return mount, secret, files


@pytest.mark.parametrize("which", RENDERED)
def test_the_admin_token_and_cookie_key_come_from_the_secret(which):
    mount, secret, files = secret_files(which)
    for key, path in files.items():
        assert path, f"{key} is not set: it must name a file in the mounted Secret"
        assert Path(path).parent == Path(mount), f"{key} = {path} is not under {mount}"
    shipped = [s for s in objects(which, "Secret") if s["metadata"]["name"] == secret]
    if which == PROD:
        assert not shipped, "prod must not ship (and overwrite) the Secret"
        return
    [shipped] = shipped
    data = shipped.get("stringData", {})
    for path in files.values():
        assert Path(path).name in data, f"the Secret has no {Path(path).name!r}"
    # Shorter tokens are ignored (the admin API stays read-only).
    assert len(data[Path(files["node.admin_token_file"]).name].encode()) >= 16


def test_no_placeholder_reaches_prod():
    text = yaml.safe_dump_all(render(PROD))
    assert "REPLACE-ME" not in text


# ---- the config ------------------------------------------------------------------------------


def config_sections() -> dict[str, str]:
    """docs/CONFIG.md's text under each `## `[table]`` heading, by table name."""
    sections = {}
    for chunk in re.split(r"^## ", CONFIG_MD.read_text(), flags=re.M)[1:]:
        heading, _, body = chunk.partition("\n")
        m = re.match(r"`\[\[?([a-z_]+)\]\]?`", heading)
        if m:
            sections[m.group(1)] = body
    return sections


def documented_key(section: str, key: str) -> bool:
    """A table's own key: a row of the section's table (`| `key` |`), or for a key whose value
    is itself a table, rows of its members (`key.member`) or a subsection (`table[].key`)."""
    return bool(
        re.search(rf"^\| `{re.escape(key)}`", section, re.M)
        or re.search(rf"^\| `{re.escape(key)}` / ", section, re.M)
        or re.search(rf"/ `{re.escape(key)}` \|", section)
        or re.search(rf"`{re.escape(key)}\.[a-z_]+`", section)
        or re.search(rf"`[a-z_]+\[\]\.{re.escape(key)}`", section)
    )


def documented_member(section: str, parent: str, key: str) -> bool:
    """A member of an inline table or of a list of tables: `parent.key`, or the word in a code
    span of the section (the rows of a subsection, or an inline example like `{ lat = .. }`)."""
    if re.search(rf"`{re.escape(parent)}\.{re.escape(key)}`", section):
        return True
    return any(re.search(rf"\b{re.escape(key)}\b", span) for span in re.findall(r"`([^`\n]+)`", section))


def undocumented(section: str, table: dict, parent: str | None = None) -> list[str]:
    missing = []
    for key, value in table.items():
        ok = documented_key(section, key) if parent is None else documented_member(section, parent, key)
        if not ok:
            missing.append(key if parent is None else f"{parent}.{key}")
        members = [value] if isinstance(value, dict) else [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
        for member in members:
            missing += undocumented(section, member, key)
    return missing


@pytest.mark.parametrize("which", RENDERED)
def test_the_config_uses_only_documented_keys(which):
    sections = config_sections()
    assert {"node", "sessions", "routes", "pools"} <= set(sections), "CONFIG.md's headings moved?"
    missing = []
    for name, value in config(which).items():
        if name not in sections:
            missing.append(f"[{name}]")
            continue
        for table in value if isinstance(value, list) else [value]:
            missing += [f"{name}.{k}" for k in undocumented(sections[name], table)]
    assert not missing, f"keys not in docs/CONFIG.md: {sorted(set(missing))}"


def test_the_key_check_catches_an_invented_key():
    sections = config_sections()
    assert undocumented(sections["node"], {"listen": "x", "admin_token": "x"}) == ["admin_token"]
    assert undocumented(sections["sessions"], {"sentinel_masters": "x"}) == ["sentinel_masters"]
    assert undocumented(sections["routes"], {"timeouts": {"connect": "1s", "linger": "1s"}}) == ["timeouts.linger"]


@pytest.mark.parametrize("which", RENDERED)
def test_sessions_are_shared_through_redis_sentinel(which):
    sessions = config(which)["sessions"]
    assert sessions["store"] == "redis"
    assert sessions["sentinels"], "no sentinels"
    for sentinel in sessions["sentinels"]:
        host, _, port = sentinel.rpartition(":")
        assert host and 0 < int(port) < 65536, sentinel
    assert sessions.get("sentinel_master", "mymaster")
