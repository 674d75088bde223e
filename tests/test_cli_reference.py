"""The command-line reference (docs/cli.md) is generated from the click commands and kept current:
CI fails when a command, option or help text changes without regenerating it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts/gen_cli_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_published_reference_is_current() -> None:
    assert _generator().check() is None


def test_every_command_and_visible_option_is_listed() -> None:
    from modelseal.cli.main import cli

    text = _generator().render()
    seen = 0

    def visit(command: click.Command, ctx: click.Context) -> None:
        nonlocal seen
        assert f"modelseal {ctx.command_path.partition(' ')[2]}".strip() in text
        for param in command.params:
            if isinstance(param, click.Option):
                for name in param.opts:
                    listed = f"| `{name}`" in text or f", `{name}`" in text
                    assert listed == (not param.hidden), (ctx.command_path, name)
        seen += 1
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                visit(sub, click.Context(sub, info_name=name, parent=ctx))

    visit(cli, click.Context(cli, info_name="modelseal"))
    assert seen > 50  # every group and leaf command, not only the top level
    assert "--encrypt-with" not in text  # push's hidden old name of --kek


def test_rendering_is_deterministic() -> None:
    generator = _generator()
    assert generator.render() == generator.render()


def test_check_names_the_regenerate_command_when_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    generator = _generator()
    stale = tmp_path / "cli.md"
    stale.write_text(generator.render().replace("--force", "--forced", 1), encoding="utf-8")
    monkeypatch.setattr(generator, "TARGET", stale)
    assert generator.main(["--check"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert "python scripts/gen_cli_docs.py" in lines[0]
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0
