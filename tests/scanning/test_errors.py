"""The scanner's errors are part of the one hierarchy in modelseal.errors: each has its own
stable code, the Python API's hints name no command-line option, and the CLI puts its own."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

import modelseal
from modelseal import errors
from modelseal.cli.hints import cli_hint
from modelseal.errors import (
    AllowlistError,
    ForbiddenGlobalError,
    ModelsealError,
    ScanPathError,
    UnscannableError,
)
from modelseal.loading.safe_pickle import safe_load

SCANNING_ERRORS = (ScanPathError, AllowlistError, UnscannableError, ForbiddenGlobalError)


def _no_cli_words(error: ModelsealError) -> None:
    assert error.hint, error
    assert "--" not in error.hint and "modelseal " not in error.hint, error.hint


def test_each_scanning_error_has_its_own_code_in_the_one_hierarchy() -> None:
    codes: dict[str, type[ModelsealError]] = {}
    stack: list[type[ModelsealError]] = [ModelsealError]
    while stack:
        cls = stack.pop()
        if cls.__module__ == errors.__name__:
            assert codes.setdefault(cls.code, cls) is cls, (cls, codes[cls.code])
        stack.extend(cls.__subclasses__())
    for cls in SCANNING_ERRORS:
        assert cls.__module__ == "modelseal.errors"
        assert codes[cls.code] is cls
    assert [c.exit_code for c in SCANNING_ERRORS] == [2, 2, 2, 1]


def test_there_is_one_error_hierarchy() -> None:
    import importlib
    import importlib.util

    assert importlib.util.find_spec("modelseal.scanning.errors") is None
    for name in ("scanning.engine", "loading.verified", "loading.safe_pickle", "crypto.api",
                 "registry.core", "policy.gate", "serving.app", "client"):  # fmt: skip
        importlib.import_module(f"modelseal.{name}")
    stack: list[type[ModelsealError]] = [ModelsealError]
    while stack:
        cls = stack.pop()
        assert cls.__module__ == "modelseal.errors", cls  # every error class lives there
        stack.extend(cls.__subclasses__())


def test_missing_path_hint_is_plain_language(tmp_path: Path) -> None:
    with pytest.raises(ScanPathError) as caught:
        modelseal.scan(tmp_path / "missing.pkl")
    assert caught.value.code == "scan-path" and caught.value.exit_code == 2
    _no_cli_words(caught.value)


def test_bad_allow_entry_is_an_allowlist_error(tmp_path: Path) -> None:
    (tmp_path / "m.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(AllowlistError) as caught:
        modelseal.scan(tmp_path / "m.pkl", allow=["not a name"])
    assert caught.value.code == "allowlist" and caught.value.exit_code == 2
    _no_cli_words(caught.value)


def test_forbidden_global_hint_is_plain_language_and_the_cli_names_its_commands(
    tmp_path: Path,
) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x04cos\nsystem\n\x8c\x04true\x85R.")
    with path.open("rb") as fh, pytest.raises(ForbiddenGlobalError) as caught:
        safe_load(fh)
    error = caught.value
    assert (error.module, error.name, error.code, error.exit_code) == (
        "os",
        "system",
        "forbidden-global",
        1,
    )
    _no_cli_words(error)
    assert error.topic == "forbidden-global"
    hint = cli_hint(error)
    assert "modelseal scan" in hint and "--allow" in hint
