"""One command line: --json on every command that reports (errors included, as one JSON
object), --force wherever an output may exist, one name per concept, and aliases that can be
listed and removed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest

import modelseal
from modelseal.cli.main import cli

Run = Callable[..., tuple[int, str, str]]
# Commands that do not report: they serve, or write the data they are asked for.
NO_REPORT = {"registry serve", "audit export", "serve"}


def _commands() -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(cli)

    def walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                yield from walk(sub, f"{path} {name}".strip())
        else:
            yield path, command

    yield from walk(cli, "")


def test_every_reporting_command_takes_json() -> None:
    missing = [
        path
        for path, command in _commands()
        if path not in NO_REPORT
        and "--json" not in {o for p in command.params for o in getattr(p, "opts", [])}
    ]
    assert missing == []


@pytest.mark.parametrize(
    "args",
    [
        ("versions", "list", "bad name!"),
        ("verify", "/nonexistent/model", "--signature", "/nonexistent/sig", "--public-key", "k"),
        ("alias", "set", "m", "prod", "1", "--bogus-option"),
    ],
)
def test_errors_are_a_json_object_with_json(
    run_cli: Run, tmp_path: Path, args: tuple[str, ...]
) -> None:
    code, out, err = run_cli(*args, "--home", tmp_path / "home", "--json")
    assert code == 2
    error = json.loads(out)["error"]
    assert error["exit_code"] == 2 and error["message"] and error["code"]
    assert err.strip().splitlines()[-1].startswith("modelseal: error: ")


def test_sign_refuses_to_overwrite_without_force(
    run_cli: Run, model_dir: Path, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    sig = tmp_path / "model.sig"
    sig.write_text("keep me")
    code, _, err = run_cli("sign", model_dir, "--private-key", key_pair[0], "--signature", sig)
    assert code == 2 and "already exists" in err and "--force" in err
    assert sig.read_text() == "keep me"
    code, _, err = run_cli(
        "sign", model_dir, "--private-key", key_pair[0], "--signature", sig, "--force"
    )
    assert code == 0, err
    assert json.loads(sig.read_text())["mediaType"].startswith("application/vnd.dev.sigstore")


@pytest.fixture
def published(run_cli: Run, model_dir: Path, key_pair: tuple[Path, Path], tmp_path: Path) -> Any:
    sig = tmp_path / "model.sig"
    modelseal.sign(model_dir, private_key=key_pair[0], signature=sig)
    home = tmp_path / "home"
    for _ in range(2):
        code, _, err = run_cli("push", model_dir, "--name", "m", "--signature", sig,
                               "--public-key", key_pair[1], "--home", home)  # fmt: skip
        assert code == 0, err
    return home


def test_pull_replaces_only_with_force(run_cli: Run, published: Path, tmp_path: Path) -> None:
    dest = tmp_path / "deployed"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    code, _, err = run_cli("pull", "m:1", dest, "--home", published)
    assert code == 2 and "already exists" in err
    assert (dest / "old.txt").read_text() == "old"
    code, _, err = run_cli("pull", "m:1", dest, "--home", published, "--force")
    assert code == 0, err
    assert not (dest / "old.txt").exists() and (dest / "config.json").exists()
    assert not [p for p in tmp_path.iterdir() if ".replaced-" in p.name or ".partial-" in p.name]


def test_aliases_can_be_listed_and_removed(
    run_cli: Run, published: Path, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    home = ("--home", published)
    assert run_cli("alias", "set", "m", "canary", "2", *home)[0] == 0
    code, out, _ = run_cli("alias", "list", "m", "--json", *home)
    assert [(a["alias"], a["version"]) for a in json.loads(out)] == [("canary", 2)]
    assert run_cli("alias", "remove", "m", "canary", *home)[0] == 0
    # production is protected by the gate: refused until a gate key is trusted and a passing
    # decision for this version is attached (tests/policy covers the gate itself).
    code, _, err = run_cli("alias", "set", "m", "production", "2", *home)
    assert code == 1 and "production is protected" in err
    assert run_cli("keygen", "--private-key", tmp_path / "gate", "--public-key",
                   tmp_path / "gate.pub", "--no-passphrase")[0] == 0  # fmt: skip
    assert run_cli("registry", "trust", "add", tmp_path / "gate.pub", "--name", "gate",
                   "--purpose", "gate", *home)[0] == 0  # fmt: skip
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"signature: {{keys: [{{name: ci, path: {key_pair[1]}}}]}}\n")
    code, _, err = run_cli("gate", "m:2", "--policy", policy, "--attest", tmp_path / "m2.att",
                           "--gate-key", tmp_path / "gate", *home)  # fmt: skip
    assert code == 0, err
    assert run_cli("attest", "attach", "m:2", tmp_path / "m2.att", *home)[0] == 0
    assert run_cli("alias", "set", "m", "production", "2", *home)[0] == 0
    code, out, _ = run_cli("alias", "list", "m", "--json", *home)
    listed = json.loads(out)
    assert code == 0 and [(a["alias"], a["version"]) for a in listed] == [("production", 2)]
    code, out, _ = run_cli("alias", "remove", "m", "production", "--json", *home)
    assert code == 0 and json.loads(out) == {"status": "removed"}
    assert json.loads(run_cli("alias", "list", "m", "--json", *home)[1]) == []
    code, _, err = run_cli("alias", "remove", "m", "production", *home)
    assert code == 2 and "see 'modelseal alias list m'" in err


def test_deleted_versions_are_listed_only_with_all(run_cli: Run, published: Path) -> None:
    home = ("--home", published)
    assert run_cli("versions", "delete", "m", "2", "--reason", "bad", *home)[0] == 0
    live = json.loads(run_cli("versions", "list", "m", "--json", *home)[1])
    every = json.loads(run_cli("versions", "list", "m", "--all", "--json", *home)[1])
    assert [v["version"] for v in live] == [1]
    assert [(v["version"], v["deleted"]) for v in every] == [(1, False), (2, True)]


def test_one_name_per_concept(run_cli: Run) -> None:
    push = click.Context(cli).command.get_command(click.Context(cli), "push")  # type: ignore[attr-defined]
    assert push is not None
    visible = {o for p in push.params if not getattr(p, "hidden", False) for o in p.opts}
    assert "--kek" in visible and "--encrypt-with" not in visible
    _, out, _ = run_cli("push", "--help")
    assert "--kek" in out and "--encrypt-with" not in out
