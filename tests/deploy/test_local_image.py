"""The local image build and its smoke run (deploy/container/build-local.sh, smoke.sh) kept in
step with what they stand for: the build uses the Containerfile as it is, on a base with the
Containerfile's default tag; the smoke run restricts the container exactly as the Deployment
does and runs the init container's own command. (The scripts need root and podman, so the suite
does not run them: see docs/deployment.md for the run.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CONTAINER = DEPLOY / "container"


def _flat(path: Path) -> str:
    """The script with its line continuations joined and its blanks collapsed."""
    return " ".join(path.read_text().replace("\\\n", " ").split())


def _pod() -> dict[str, Any]:
    for doc in yaml.safe_load_all((DEPLOY / "k8s" / "deployment.yaml").read_text()):
        if doc and doc.get("kind") == "Deployment":
            pod: dict[str, Any] = doc["spec"]["template"]["spec"]
            return pod
    raise AssertionError("no Deployment in deployment.yaml")


def _restricted() -> list[str]:
    """The podman options smoke.sh runs every container with."""
    found = re.search(r"^restricted=\((.*?)\)$", (CONTAINER / "smoke.sh").read_text(), re.M | re.S)
    assert found, "smoke.sh has no restricted=(...) options"
    return [word for word in found.group(1).split() if word != '"${podman_opts[@]}"']


def test_the_local_build_uses_the_containerfile_unchanged_on_a_base_with_its_tag() -> None:
    script = _flat(CONTAINER / "build-local.sh")
    assert '-f "$REPO/deploy/container/Containerfile"' in script
    assert '--build-arg "PYTHON_IMAGE=$BASE_IMAGE"' in script
    default = re.search(r"^ARG PYTHON_IMAGE=\S+/(python:\S+)$",
                        (CONTAINER / "Containerfile").read_text(), re.M)  # fmt: skip
    assert default, "the Containerfile's PYTHON_IMAGE has no default"
    base = re.search(r"BASE_IMAGE=\$\{BASE_IMAGE:-localhost/(\S+)\}", script)
    assert base and base.group(1) == default.group(1)
    suite = re.search(r"SUITE=\$\{SUITE:-(\w+)\}", script)
    assert suite and default.group(1).endswith(f"-{suite.group(1)}")  # e.g. -slim-bookworm


def test_the_smoke_run_restricts_the_container_as_the_deployment_does() -> None:
    pod = _pod()
    (serve,) = pod["containers"]
    context = serve["securityContext"]
    options = _restricted()
    assert f"{context['runAsUser']}:{context['runAsGroup']}" == options[options.index("--user") + 1]
    assert context["readOnlyRootFilesystem"] is True
    assert {"--read-only", "--read-only-tmpfs=false"} <= set(options)
    assert context["capabilities"]["drop"] == ["ALL"] and "--cap-drop=ALL" in options
    assert context["allowPrivilegeEscalation"] is False
    assert options[options.index("--security-opt") + 1] == "no-new-privileges"
    # Writable: exactly the Deployment's emptyDirs, each a tmpfs.
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    writable = {m["mountPath"] for m in serve["volumeMounts"] if m["name"] in empty_dirs}
    tmpfs = {options[i + 1].split(":")[0] for i, o in enumerate(options) if o == "--tmpfs"}
    assert writable == tmpfs == {"/tmp", "/home/modelseal", "/var/lib/modelseal"}


def test_the_smoke_run_runs_the_init_containers_own_command() -> None:
    (init,) = _pod()["initContainers"]
    command = init["command"]
    assert command[:2] == ["/bin/sh", "-c"]
    assert " ".join(command[2].split()) in _flat(CONTAINER / "smoke.sh")
