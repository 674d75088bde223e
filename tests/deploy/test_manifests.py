"""The deployment files as a cluster admission check and a reviewer would read them: every
Kubernetes manifest parses; the Deployment meets the restricted Pod Security Standard, probes
the v2 health routes and reads its secrets from Secrets; traffic is denied by default; the
ServiceMonitor scrapes /metrics; the Containerfile's final stage runs a non-root numeric user,
installs no compiler and starts ``modelseal serve``. (No cluster here; the image is built and
run, as root and outside the suite, by deploy/container/build-local.sh and smoke.sh: see
docs/deployment.md.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2] / "deploy"
K8S = ROOT / "k8s"
CONTAINERFILE = ROOT / "container" / "Containerfile"
COMPILERS = ("gcc", "g++", "cc", "clang", "build-essential", "make", "cmake", "gfortran",
             "python3-dev", "libc6-dev", "rustc", "cargo")  # fmt: skip


def _documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert isinstance(doc, dict), f"{path.name}: a document that is not a mapping"
            doc["__file__"] = path.name
            docs.append(doc)
    return docs


def _kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in _documents() if d["kind"] == kind]


def _deployment() -> dict[str, Any]:
    (deployment,) = _kind("Deployment")
    return deployment


def test_every_manifest_parses_and_names_its_kind() -> None:
    docs = _documents()
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "Deployment", "Service", "NetworkPolicy", "ServiceMonitor",
            "Secret", "ServiceAccount", "ConfigMap", "Kustomization"} <= kinds  # fmt: skip
    for doc in docs:
        assert doc.get("apiVersion"), doc["__file__"]
        if doc["kind"] not in ("Namespace", "Kustomization"):
            assert doc["metadata"]["namespace"] == "modelseal", doc["__file__"]
    (kustomization,) = _kind("Kustomization")
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_the_namespace_enforces_the_restricted_standard() -> None:
    (namespace,) = _kind("Namespace")
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_deployment_meets_the_restricted_pod_security_standard() -> None:
    deployment = _deployment()
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    containers = pod["containers"] + pod.get("initContainers", [])
    assert containers
    for container in containers:
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] > 0
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        assert not context["capabilities"].get("add")
        assert context.get("privileged", False) is False
        assert context["seccompProfile"]["type"] == "RuntimeDefault"
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"])
        assert {"cpu", "memory"} <= set(resources["limits"])
    # Volumes: only kinds the restricted standard allows; /tmp is an emptyDir.
    allowed = {"emptyDir", "configMap", "secret", "projected", "downwardAPI",
               "persistentVolumeClaim", "csi", "ephemeral"}  # fmt: skip
    volumes = {v["name"]: v for v in pod["volumes"]}
    for volume in volumes.values():
        assert set(volume) - {"name"} <= allowed, volume
    (serve,) = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in serve["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert "emptyDir" in volumes[mounts["/var/lib/modelseal"]]  # MODELSEAL_HOME


def test_the_probes_use_the_v2_health_routes_on_the_serving_port() -> None:
    (serve,) = _deployment()["spec"]["template"]["spec"]["containers"]
    assert serve["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert serve["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    ports = {p["name"]: p["containerPort"] for p in serve["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        assert serve[probe]["httpGet"]["port"] in ("http", ports["http"])
    args = serve["args"]
    assert args[args.index("--port") + 1] == str(ports["http"])
    assert "--no-auth" not in args  # tokens are checked in the cluster
    assert args[args.index("--model") + 1].count("@") == 1  # follows an alias


def test_secrets_come_from_secret_files_never_from_the_environment() -> None:
    pod = _deployment()["spec"]["template"]["spec"]
    (serve,) = pod["containers"]
    env = {e["name"]: e for e in serve["env"]}
    for name, item in env.items():
        assert "valueFrom" not in item, name  # no secret in the environment (CKV_K8S_35)
        assert not re.search(r"SECRET|PASSWORD|TOKEN|DB_URL|KEY_ID", name), name
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in serve["volumeMounts"]}
    config = mounts["/var/lib/modelseal/config.toml"]  # MODELSEAL_HOME/config.toml: db_url
    assert volumes[config["name"]]["secret"]["secretName"] == "modelseal-serve"
    assert env["AWS_SHARED_CREDENTIALS_FILE"]["value"].startswith(
        next(p for p, m in mounts.items() if "secret" in volumes[m["name"]]
             and volumes[m["name"]]["secret"]["secretName"] == "modelseal-blobs")
    )  # fmt: skip
    secrets = {s["metadata"]["name"]: s for s in _kind("Secret")}
    assert "db_url = " in secrets["modelseal-serve"]["stringData"]["config.toml"]
    for secret in secrets.values():
        for value in secret.get("stringData", {}).values():
            assert "CHANGE-ME" in value or "-----BEGIN" in value  # placeholders only


def test_traffic_is_denied_by_default_and_allowed_only_where_needed() -> None:
    policies = _kind("NetworkPolicy")
    deny = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert len(deny) == 1
    assert set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny[0]["spec"] and "egress" not in deny[0]["spec"]
    (allow,) = [p for p in policies if p["spec"]["podSelector"] != {}]
    labels = _deployment()["spec"]["template"]["metadata"]["labels"]
    assert allow["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    ingress_ports = {p["port"] for rule in allow["spec"]["ingress"] for p in rule["ports"]}
    assert ingress_ports == {8080}
    egress_ports = {(p["protocol"], p["port"]) for rule in allow["spec"]["egress"]
                    for p in rule["ports"]}  # fmt: skip
    assert {("TCP", 5432), ("UDP", 53), ("TCP", 53)} <= egress_ports
    assert all(rule.get("ports") for rule in allow["spec"]["egress"])  # no open egress rule


def test_the_service_and_the_servicemonitor_reach_metrics_on_the_serving_port() -> None:
    (service,) = _kind("Service")
    labels = _deployment()["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (monitor,) = _kind("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}


# --------------------------------------------------------------------------- Containerfile


def _stages(source: str | None = None) -> list[tuple[str, list[tuple[str, str]]]]:
    """(stage name, [(INSTRUCTION, arguments)]) of each FROM, continuation lines joined."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text() if source is None else source)
    stages: list[tuple[str, list[tuple[str, str]]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else ""
            stages.append((name, []))
        if stages:
            stages[-1][1].append((instruction, rest.strip()))
        else:
            assert instruction == "ARG", line
    return stages


def test_the_image_is_built_in_two_stages_and_runs_from_the_wheel_only() -> None:
    stages = _stages()
    assert [name for name, _ in stages] == ["builder", "runtime"]
    _, final = stages[-1]
    copies = [args for ins, args in final if ins == "COPY"]
    assert copies and all(a.startswith("--from=builder") for a in copies), copies
    assert any("pip install" in args and "--only-binary=:all:" in args
               for ins, args in final if ins == "RUN")  # fmt: skip


def test_the_final_stage_runs_as_a_numeric_non_root_user() -> None:
    _, final = _stages()[-1]
    users = [args for ins, args in final if ins == "USER"]
    assert users, "no USER in the final stage"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or int(gid) > 0)
    # Nothing after USER switches back.
    last_user = max(i for i, (ins, _) in enumerate(final) if ins == "USER")
    assert all(ins != "USER" for ins, _ in final[last_user + 1 :])


def _installs(final: list[tuple[str, str]]) -> set[str]:
    """Compilers named by the stage's RUN lines, and any system package install."""
    found: set[str] = set()
    for instruction, args in final:
        if instruction == "RUN":
            found |= set(re.split(r"[\s;&|]+", args)) & set(COMPILERS)
            found |= {w for w in ("apt-get install", "apk add", "dnf install") if w in args}
    return found


def test_the_final_stage_installs_no_compiler() -> None:
    _, final = _stages()[-1]
    assert _installs(final) == set()
    bad = (
        "FROM python AS b\nRUN true\nFROM python AS r\nRUN apt-get update && \\\n"
        "  apt-get install -y gcc make\n"
    )  # the check sees a compiler in a sample
    assert _installs(_stages(bad)[-1][1]) == {"gcc", "make", "apt-get install"}


def test_the_entrypoint_is_modelseal_serve_and_there_is_no_healthcheck() -> None:
    _, final = _stages()[-1]
    entry = [args for ins, args in final if ins == "ENTRYPOINT"]
    assert entry and yaml.safe_load(entry[-1]) == ["modelseal", "serve"]
    assert all(ins != "HEALTHCHECK" for ins, _ in final)
    env = " ".join(args for ins, args in final if ins == "ENV")
    assert "MODELSEAL_HOME=/var/lib/modelseal" in env
    volumes = [yaml.safe_load(args) for ins, args in final if ins == "VOLUME"]
    assert {"/tmp", "/var/lib/modelseal"} <= {v for vs in volumes for v in vs}


@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda p: p.name)
def test_no_manifest_uses_latest_or_host_paths(path: Path) -> None:
    text = path.read_text()
    assert "hostPath" not in text
    assert not re.search(r"image:\s*\S+:latest\b", text)
