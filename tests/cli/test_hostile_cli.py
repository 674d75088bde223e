"""Every command, given hostile arguments, ends in a documented exit code (0, 1 or 2) and, for
an error, one line on stderr - never a traceback or an internal error (exit 3). Issue 14.

The commands are found by walking the click groups, so a new command is covered without a
change here. Values are drawn per parameter type: non-UTF-8 file names, FIFOs, directories
where files are expected, empty files, binary garbage, deeply nested JSON, malformed model
files, huge and negative numbers, very long and odd Unicode strings. Nothing touches the
network: server and database URLs point at closed local ports, AWS credentials are fake and
the metadata service is disabled; ``registry serve`` only ever gets a port it cannot use.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelseal.cli.main import cli, main

# ------------------------------------------------------------------------- the command tree


def _commands() -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}

    def walk(command: click.Command, path: list[str], ctx: click.Context) -> None:
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None, name
                walk(sub, [*path, name], click.Context(sub, parent=ctx, info_name=name))
        else:
            found[" ".join(path)] = command

    walk(cli, [], click.Context(cli, info_name="modelseal"))
    return found


COMMANDS = _commands()
SERVERS = {"registry serve"}  # given only arguments that fail before anything binds
# Examples per command (about 30 s in all); raise it for a deeper run.
EXAMPLES = int(os.environ.get("MODELSEAL_HOSTILE_EXAMPLES", "4"))

# ------------------------------------------------------------------------- hostile inputs


class Hang(BaseException):
    """Raised by the alarm when a command blocks (BaseException: main() must not catch it)."""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Named hostile files and directories (built here, never committed)."""
    d = tmp_path_factory.mktemp("hostile")
    paths: dict[str, Path] = {}

    def put(name: str | bytes, data: bytes) -> Path:
        path = Path(os.fsdecode(os.path.join(os.fsencode(d), os.fsencode(name))))
        path.write_bytes(data)
        return path

    paths["non-utf8"] = put(b"model-\xff\xfe.bin", os.urandom(512))
    paths["empty"] = put("empty.bin", b"")
    paths["garbage"] = put("garbage.bin", os.urandom(4096))
    paths["deep-json"] = put("deep.json", b"[" * 100_000 + b"]" * 100_000)
    paths["deep-object"] = put("deep-object.json", b'{"a":' * 50_000 + b"1" + b"}" * 50_000)
    paths["not-utf8-text"] = put("latin1.txt", "caf\xe9 \xff\n".encode("latin-1"))
    paths["onnx"] = put("model.onnx", b"\x08\x07\x12\x04junk" + os.urandom(300))
    paths["lightgbm"] = put("model.lgb", b"tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=")
    paths["lightgbm-txt"] = put("lgbm.txt", b"tree\nversion=v4\nTree=0\nnum_leaves=99999999999\n")
    paths["xgboost"] = put("model.ubj", b"{L\x00\x00\x00\x00\x00\x00\x00\x05learner" + b"[" * 10)
    paths["xgboost-json"] = put("xgb.json", b'{"learner": {"gradient_booster": ' + b"[" * 5000)
    paths["safetensors"] = put("model.safetensors", (2**62).to_bytes(8, "little") + b"{")
    paths["pickle"] = put("model.pkl", b"\x80\x04\x95" + b"\xff" * 8 + b"(" * 100_000)
    paths["keras"] = put("model.keras", b"PK\x03\x04" + os.urandom(64))
    paths["pem"] = put("key.pem", b"-----BEGIN PRIVATE KEY-----\n" + b"A" * 5000 + b"\n")
    fifo = d / "fifo"
    os.mkfifo(fifo)
    paths["fifo"] = fifo
    (d / "dir").mkdir()
    paths["dir"] = d / "dir"
    model = d / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(os.urandom(100))
    paths["model-dir"] = model
    paths["missing"] = d / "missing" / "nothing.bin"
    return {name: str(p) for name, p in paths.items()}


LONG = "x" * 5000
ODD = ["", "-", "\u202e\ufeffmodel", "m" * 300, "ℌ:١٠", "a b\tc\n", "..", "a/../../b"]
INTS = ["-1", "0", "70000", "99999999999999999999999999", "1e3", "abc"]
FLOATS = ["nan", "inf", "-1", "1e400", "abc"]
SIZES = ["0", "-5", "1e100", "99999999999999999999TiB", "lots"]
URLS = ["http://127.0.0.1:1", "http://127.0.0.1:70000", "http://[::1", "ftp://x", "not a url"]
# Local files only inside the hostile folder (a registry may create a database's parent).
DB_URLS = ["sqlite:///{missing}.db", "sqlite:///{fifo}", "sqlite:///{dir}", "sqlite:///{garbage}",
           "postgresql://u@127.0.0.1:1/x", "bogus://x", ""]  # fmt: skip
KEKS = [
    "local:{missing}",
    "local:{garbage}",
    "local:{fifo}",
    "pkcs11:token=t;object=o?module-path={garbage}",
    "aws-kms:k?region=us-east-1&endpoint=http://127.0.0.1:1",
    "vault:x",
    "",
]
REFS = ["m", "m:1", "m@prod", "m:99999999999999999999", "m:-1", "m@", ":", "m:1@a"]
DURATIONS = ["1e400", "nan", "-1", "99999999999999999999d", "1y", "0"]


# Any NUL-free text an argv can carry: printable or not, and raw bytes as Python decodes argv.
UNICODE = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)
RAW = st.binary(min_size=1, max_size=40).filter(lambda b: b"\x00" not in b).map(os.fsdecode)


def values(param: click.Parameter, files: dict[str, str]) -> st.SearchStrategy[str]:
    """Hostile values for one parameter, by its type and name."""
    name = param.name or ""
    paths = st.sampled_from(sorted(files.values()))
    text = st.one_of(paths, st.sampled_from([*ODD, LONG]), UNICODE, RAW)
    kind = param.type
    if isinstance(kind, click.Choice):
        return st.sampled_from([*map(str, kind.choices), "bogus"])
    if isinstance(kind, click.types.IntParamType):
        return st.sampled_from(INTS)
    if isinstance(kind, click.types.FloatParamType):
        return st.sampled_from(FLOATS)
    if kind.name == "SIZE":
        return st.sampled_from(SIZES)
    if name == "server":
        return st.sampled_from(URLS)
    if name == "db_url":
        return st.sampled_from([u.format(**files) for u in DB_URLS])
    if name == "blob_url":
        return st.one_of(paths, st.sampled_from(["bogus://x", ""]))
    if name in ("kek", "new_kek", "encrypt_with", "encrypt_with_old", "pkcs11_uri", "uri"):
        return st.sampled_from([k.format(**files) for k in KEKS])
    if name in ("ref", "model", "baseline"):
        return st.one_of(st.sampled_from(REFS), paths)
    if name in ("grace", "expires_in"):
        return st.sampled_from(DURATIONS)
    if name == "host":
        return st.sampled_from(["999.1.1.1", "", "::::", LONG])
    if name == "metadata":
        return st.sampled_from(["k=" + LONG * 10, "=", "k", "k=\udcff", "k=v"])
    return text


def command_args(command: click.Command, files: dict[str, str], draw: st.DataObject) -> list[str]:
    """A hostile command line for ``command`` (all arguments, some options)."""
    args: list[str] = []
    for param in command.params:
        strategy = values(param, files)
        if isinstance(param, click.Argument):
            count = 1 if param.nargs == 1 else draw.draw(st.integers(1, 2))
            args.extend(draw.draw(strategy, label=param.name) for _ in range(count))
            continue
        assert isinstance(param, click.Option)
        if param.name in ("port",) or not draw.draw(st.booleans(), label=f"use {param.name}"):
            continue
        flag = param.opts[0]
        if param.is_flag:
            args.append(flag)
        else:
            args.extend([flag, draw.draw(strategy, label=param.name)])
    return args


# ------------------------------------------------------------------------------ running


@contextlib.contextmanager
def alarm(seconds: int) -> Iterator[None]:
    def ring(_signum: int, _frame: FrameType | None) -> None:
        raise Hang

    previous = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run(argv: list[str]) -> tuple[int, str, str]:
    """Run ``modelseal ARGV`` in process with stdin empty and not a terminal."""
    out, err = io.StringIO(), io.StringIO()
    stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(b""))
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), alarm(60):
            code = main(argv)
    except Hang:
        pytest.fail(f"modelseal {argv!r} blocked for 60 s")
    finally:
        sys.stdin = stdin
    return code, out.getvalue(), err.getvalue()


def check(argv: list[str]) -> tuple[int, str]:
    """The documented outcome: exit 0, 1 or 2; no traceback; an error is one line."""
    code, out, err = run(argv)
    shown = repr(argv)[:600]
    assert "Traceback" not in err, f"{shown}\n{err}"
    assert code in (0, 1, 2), f"exit {code} for {shown}\n{err[:2000]}"
    if code == 2:
        lines = err.strip().split("\n")
        assert err.strip().isprintable(), f"escape it: {shown}\n{err!r}"  # no raw controls
        assert len(lines) == 1 and lines[0].startswith("modelseal: error: "), f"{shown}\n{err}"
        options = argv[: argv.index("--")] if "--" in argv else argv
        if "--json" in options:  # stdout is one JSON document (the error, or the report saying it)
            assert isinstance(json.loads(out), dict), f"{shown}\n{out}"
    return code, err


@pytest.fixture(autouse=True)
def isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A private home, no credentials, no network, no passphrase."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("MODELSEAL_HOME", str(home))
    monkeypatch.chdir(home)
    for name in list(os.environ):
        if name.startswith(("MODELSEAL_", "AWS_")) and name != "MODELSEAL_HOME":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "*")


@pytest.mark.parametrize("name", sorted(set(COMMANDS) - SERVERS))
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(draw=st.data())
def test_every_command_survives_hostile_arguments(
    name: str, hostile: dict[str, str], draw: st.DataObject
) -> None:
    args = command_args(COMMANDS[name], hostile, draw)
    check([*name.split(), *args])


@pytest.mark.parametrize(
    "args",
    [
        ["--port", "70000"],
        ["--port", "-1"],
        ["--port", "99999999999999999999999"],
        ["--port", "70000", "--host", "999.1.1.1", "--threads", "0"],
        ["--port", "65536", "--tls-cert", "{fifo}", "--tls-key", "{non-utf8}"],
    ],
)
def test_serve_refuses_hostile_arguments_before_binding(
    args: list[str], hostile: dict[str, str]
) -> None:
    code, err = check(["registry", "serve", *(a.format(**hostile) for a in args)])
    assert code == 2 and "port" in err.lower()


MALFORMED = ["onnx", "lightgbm", "lightgbm-txt", "xgboost", "xgboost-json", "safetensors",
             "pickle", "keras", "garbage", "empty"]  # fmt: skip


@pytest.mark.parametrize("kind", MALFORMED)
def test_load_check_malformed_models(kind: str, hostile: dict[str, str]) -> None:
    code, _ = check(["load-check", hostile[kind], "--allow-unsigned-files"])
    assert code in (1, 2)
    for framework in ("onnx", "lightgbm", "xgboost"):
        check(["load-check", hostile[kind], "--framework", framework, "--allow-unsigned-files"])


@pytest.mark.parametrize("kind", ["deep-json", "deep-object", "non-utf8", "fifo", "dir"])
def test_deep_and_odd_inputs(kind: str, hostile: dict[str, str]) -> None:
    path = hostile[kind]
    for argv in (
        ["scan", path],
        ["digest", path],
        ["verify", hostile["model-dir"], "--signature", path, "--public-key", path],
        ["gate", hostile["model-dir"], "--policy", path, "--signature", path],
        ["attest", "verify", path, "--public-key", path],
        ["env", "capture", "--lock", path, "--output", path + ".out"],
        ["decrypt", path, path + ".out", "--keyset", path],
        ["push", hostile["model-dir"], "--name", "m", "--signature", path, "--environment", path],
    ):
        check(argv)


def test_a_passphrase_over_1023_bytes(
    tmp_path: Path, hostile: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pw").write_bytes(b"p" * 2000)
    pw = ["--passphrase-file", str(tmp_path / "pw")]
    keygen = ["keygen", "--private-key", str(tmp_path / "k.pem"),
              "--public-key", str(tmp_path / "k.pub")]  # fmt: skip
    code, err = check([*keygen, *pw])
    assert code == 2 and "at most 1023" in err
    assert not (tmp_path / "k.pem").exists()
    for argv in (  # a keyset or a KEK takes any length (scrypt)
        ["keys", "create", str(tmp_path / "ks.json"), *pw],
        ["keys", "create", "--kek", str(tmp_path / "kek.json"), *pw],
    ):
        assert check(argv)[0] == 0
    sign = ["sign", hostile["model-dir"], "--private-key", hostile["pem"],
            "--signature", str(tmp_path / "s"), *pw]  # fmt: skip
    assert check(sign)[0] == 2
    monkeypatch.setenv("MODELSEAL_PASSPHRASE", "p" * 2000)
    assert check(keygen)[0] == 2


@pytest.mark.parametrize(
    "argv",
    [
        [b"scan", b"{dir}/model-\xff\xfe.bin"],
        [b"digest", b"{dir}/model-\xff\xfe.bin"],
        [b"sign", b"{dir}/model", b"--private-key", b"{dir}/\xc3\x28.pem", b"--signature", b"s"],
        [b"registry", b"serve", b"--port", b"70000"],
        [b"decrypt", b"{dir}/deep.json", b"out-\xff", b"--keyset", b"{dir}/deep.json"],
    ],
)
def test_a_real_process_with_raw_argument_bytes(
    argv: list[bytes], hostile: dict[str, str], tmp_path: Path
) -> None:
    """A sample in a real process: arguments as raw bytes, exactly as a shell passes them."""
    root = os.fsencode(str(Path(hostile["dir"]).parent))
    args = [a.replace(b"{dir}", root) for a in argv]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "LC_ALL": "C.UTF-8"}
    proc = subprocess.run(
        [os.fsencode(sys.executable), b"-m", b"modelseal", *args],
        capture_output=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode in (0, 1, 2) and "Traceback" not in err, err
    if proc.returncode == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("modelseal: error: "), err
