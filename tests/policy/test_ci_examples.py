"""The CI examples in examples/ci run as written: every shell step of the GitHub Actions workflow
and every job script of the GitLab pipeline, in order, against a real registry server. A good
model is signed, pushed, gated, promoted with its attached decision and deployed; a model with a
malicious pickle is refused by the gate and cannot be promoted.

Only what a CI runner provides is emulated: the secrets and variables (resolved the way each
system resolves them), ``$GITHUB_OUTPUT`` / dotenv artifacts between jobs, and the working copy
(keys, policy, the trained model). The install and training steps are not run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelseal.access import principals
from modelseal.registry.trusted_keys import AddTrustedKey
from modelseal.signing.keys import generate_key, write_key_pair
from tests.conftest import build_model
from tests.registry.fixtures import open_env
from tests.server.conftest import Running, start_server, stop_server

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ci"
PASSPHRASE = "correct horse battery staple"
BIN = str(Path(sys.executable).parent)  # where `modelseal` and `python` are installed


@dataclass
class Site:
    """The registry and the CI system's secrets and variables."""

    running: Running
    secrets: dict[str, str]
    variables: dict[str, str]
    files: dict[str, Path] = field(default_factory=dict)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    env = open_env(tmp_path / "registry", f"sqlite:///{tmp_path / 'registry.db'}")
    running = start_server(env)
    try:
        keys = tmp_path / "secrets"
        keys.mkdir()
        for name in ("signer", "gate"):
            write_key_pair(generate_key("ecdsa-p256"), keys / f"{name}.key", keys / f"{name}.pub",
                           passphrase=PASSPHRASE.encode())  # fmt: skip
        env.registry.run(env.admin, AddTrustedKey(pem=(keys / "gate.pub").read_text(),
                                                  name="release gate", purpose="gate"))  # fmt: skip
        tokens = {"TRAIN": ("ci-train", "data-scientist"), "GATE": ("ci-gate", "ml-engineer"),
                  "DEPLOY": ("deployer", "devops")}  # fmt: skip
        secrets = {f"MODELSEAL_{k}_TOKEN": _token(env, *v) for k, v in tokens.items()}
        secrets.update(
            MODELSEAL_SIGNING_KEY=(keys / "signer.key").read_text(),
            MODELSEAL_GATE_KEY=(keys / "gate.key").read_text(),
            MODELSEAL_PASSPHRASE=PASSPHRASE,
        )
        variables = {"MODELSEAL_SERVER": running.url, "MODEL_NAME": "fraud"}
        files = {"signer.pub": keys / "signer.pub", "gate.pub": keys / "gate.pub"}
        yield Site(running, secrets, variables, files)
    finally:
        stop_server(running)
        env.registry.close()


def _token(env: Any, user: str, role: str) -> str:
    env.registry.run(env.admin, principals.CreateUser(name=user))
    env.registry.run(env.admin, principals.GrantRole(name=user, role=role, scope="*"))
    return str(env.registry.run(env.admin, principals.CreateToken(name=user)).token)


def _checkout(root: Path, site: Site) -> Path:
    """The working copy: public keys, the policy, and the model the training step wrote."""
    work = root / "work"
    (work / "keys").mkdir(parents=True)
    for name, path in site.files.items():
        shutil.copy(path, work / "keys" / name)
    shutil.copytree(EXAMPLES / "policy", work / "policy")
    build_model(work / "model", seed=1)
    return work


def _shell(script: str, cwd: Path, env: dict[str, str], *, shell: list[str]) -> tuple[int, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MODELSEAL_")}
    base["PATH"] = BIN + os.pathsep + base.get("PATH", "")
    done = subprocess.run([*shell, script], cwd=cwd, env={**base, **env}, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    return done.returncode, done.stdout + done.stderr


# --------------------------------------------------------------------------- GitHub Actions

GITHUB_BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]  # its `run` shell
_EXPR = re.compile(r"\$\{\{\s*([a-z_]+)\.([A-Za-z0-9_.]+)\s*\}\}")


def _github(
    work: Path,
    site: Site,
    tmp: Path,
    *,
    train_work: Path | None = None,
    only: str | None = None,
    outputs: dict[str, dict[str, str]] | None = None,
) -> list[Any]:
    """Run the workflow's shell steps job by job (each job in ``work``, the train job in
    ``train_work`` if given; with ``only``, that job alone); (job, step, exit code, output)
    for each step run, stopping at the first that fails."""
    workflow = yaml.safe_load((EXAMPLES / "github" / "model.yml").read_text())
    outputs = dict(outputs or {})
    ran: list[Any] = []
    for job_name, job in workflow["jobs"].items():
        if only is not None and job_name != only:
            continue
        cwd = train_work if job_name == "train" and train_work is not None else work
        step_outputs: dict[str, dict[str, str]] = {}
        for step in job["steps"]:
            if "run" not in step or step.get("name") in ("Install", "Train"):
                continue
            output_file = tmp / f"{job_name}-{len(ran)}.out"
            output_file.write_text("")
            env = {"RUNNER_TEMP": str(tmp), "GITHUB_OUTPUT": str(output_file),
                   "GITHUB_SHA": "0" * 40, "GITHUB_SERVER_URL": "https://ci.example",
                   "GITHUB_REPOSITORY": "team/fraud", "GITHUB_RUN_ID": "7"}  # fmt: skip
            for scope in (workflow.get("env", {}), job.get("env", {}), step.get("env", {})):
                for key, value in scope.items():
                    env[key] = _resolve(str(value), site, outputs, step_outputs)
            code, text = _shell(step["run"], cwd, env, shell=GITHUB_BASH)
            ran.append((job_name, step.get("name"), code, text))
            if code != 0:
                return ran
            if "id" in step:
                pairs = (line.split("=", 1) for line in output_file.read_text().splitlines())
                step_outputs[step["id"]] = dict(p for p in pairs if len(p) == 2)
        outputs[job_name] = {k: _resolve(str(v), site, outputs, step_outputs)
                             for k, v in job.get("outputs", {}).items()}  # fmt: skip
    return ran


def _resolve(value: str, site: Site, outputs: dict[str, dict[str, str]],
             steps: dict[str, dict[str, str]]) -> str:  # fmt: skip
    def one(match: re.Match[str]) -> str:
        kind, path = match.group(1), match.group(2)
        if kind == "secrets":
            return site.secrets[path]
        if kind == "vars":
            return site.variables[path]
        if kind == "needs":  # needs.JOB.outputs.NAME
            job, _, name = path.split(".", 2)
            return outputs[job][name]
        if kind == "steps":  # steps.ID.outputs.NAME
            step, _, name = path.split(".", 2)
            return steps[step][name]
        raise AssertionError(f"the example uses an expression the test cannot give: {kind}")

    return _EXPR.sub(one, value)


def test_the_github_workflow_gates_and_promotes_a_good_model(site: Site, tmp_path: Path) -> None:
    work = _checkout(tmp_path, site)
    ran = _github(work, site, tmp_path)
    assert [(job, code) for job, _, code, _ in ran] == [
        ("train", 0),
        ("train", 0),
        ("gate", 0),
        ("promote", 0),
        ("deploy", 0),
    ], ran[-1][3]
    assert (work / "deployed" / "config.json").read_bytes() == (
        work / "model" / "config.json"
    ).read_bytes()
    assert '"passed": true' in (work / "decision.json").read_text()


def test_the_github_workflow_stops_a_model_from_a_compromised_training_job(
    site: Site, tmp_path: Path
) -> None:
    # The training job runs with another signing key (and its public key in its working copy):
    # the registry accepts the self-consistent push, the gate (whose policy trusts only the
    # real signer) refuses it, and production stays out of reach.
    rogue = tmp_path / "rogue"
    rogue.mkdir()
    write_key_pair(generate_key("ecdsa-p256"), rogue / "signer.key", rogue / "signer.pub",
                   passphrase=PASSPHRASE.encode())  # fmt: skip
    compromised = _checkout(tmp_path / "train", site)
    shutil.copy(rogue / "signer.pub", compromised / "keys" / "signer.pub")
    site.secrets["MODELSEAL_SIGNING_KEY"] = (rogue / "signer.key").read_text()
    clean = _checkout(tmp_path / "clean", site)
    ran = _github(clean, site, tmp_path, train_work=compromised)
    assert [(job, code) for job, _, code, _ in ran] == [("train", 0), ("train", 0), ("gate", 1)]
    assert "attached a FAILED gate decision to fraud:1" in ran[-1][3]
    decision = json.loads((clean / "decision.json").read_text())
    assert decision["passed"] is False
    assert decision["checks"][0]["lines"][0] == (
        "signature: required a signer the policy trusts; found none"
    )
    ran = _github(_checkout(tmp_path / "again", site), site, tmp_path, only="promote",
                  outputs={"train": {"version": "1"}})  # fmt: skip
    ((job, _, code, text),) = ran
    assert (job, code) == ("promote", 1)
    assert "production is protected" in text and "the gate decision FAILED" in text


# --------------------------------------------------------------------------- GitLab CI

GITLAB_KEYWORDS = {"stages", "default", "variables", "include", "workflow"}
GITLAB_BASH = ["bash", "-eo", "pipefail", "-c"]  # how the runner's shell runs a script
FILE_VARIABLES = ("MODELSEAL_SIGNING_KEY", "MODELSEAL_GATE_KEY")  # CI/CD variables of type File


def _gitlab(work: Path, site: Site, tmp: Path) -> list[Any]:
    """Run every job's script, stage by stage, in one bash per job as the runner does; a
    dotenv report is read into the variables of the later jobs. (job, exit code, output)."""
    pipeline = yaml.safe_load((EXAMPLES / "gitlab" / ".gitlab-ci.yml").read_text())
    variables = {**site.variables, **site.secrets}
    for name in FILE_VARIABLES:  # a File variable holds the path of a file with the value
        path = tmp / f"{name}.file"
        path.write_text(site.secrets[name])
        path.chmod(0o600)
        variables[name] = str(path)
    variables.update(CI_COMMIT_SHA="0" * 40, CI_PIPELINE_URL="https://ci.example/pipelines/7")
    jobs = {k: v for k, v in pipeline.items() if k not in GITLAB_KEYWORDS}
    ran: list[Any] = []
    for stage in pipeline["stages"]:
        for job_name, job in jobs.items():
            if job.get("stage") != stage:
                continue
            env = dict(variables)
            for key, value in job.get("variables", {}).items():
                env[key] = re.sub(r"\$(\w+)", lambda m: variables.get(m.group(1), ""), str(value))
            lines = [line for line in job["script"] if not line.startswith("python train.py")]
            code, text = _shell(
                "\n".join(lines), work, env, shell=["bash", "-eo", "pipefail", "-c"]
            )
            ran.append((job_name, code, text))
            if code != 0:
                return ran
            dotenv = job.get("artifacts", {}).get("reports", {}).get("dotenv")
            if dotenv:
                for line in (work / dotenv).read_text().splitlines():
                    key, _, value = line.partition("=")
                    variables[key] = value
    return ran


def test_the_gitlab_pipeline_gates_and_promotes_a_good_model(site: Site, tmp_path: Path) -> None:
    work = _checkout(tmp_path, site)
    ran = _gitlab(work, site, tmp_path)
    assert [(job, code) for job, code, _ in ran] == [
        ("train", 0),
        ("gate", 0),
        ("promote", 0),
        ("deploy", 0),
    ], ran[-1][2]
    assert (work / "deployed" / "config.json").exists()
    decision = json.loads((work / "decision.json").read_text())
    assert decision["passed"] is True
    assert [c["check"] for c in decision["checks"]] == ["signature", "scan", "environment", "rules"]
