"""Malicious samples built at run time (no binaries are committed).

Every payload that could run would create the canary file, so a test can prove nothing executed.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType


@dataclasses.dataclass(frozen=True)
class Sample:
    kind: str
    category: str
    build: Callable[[Path], bytes]  # canary path -> file content
    exit_code: int  # 1 findings (even with unscannable parts), 2 unscannable without findings
    expect: str  # substring of some finding's subject or rule


# ---- a tiny pickle assembler -------------------------------------------------------------


def su(text: str) -> bytes:
    """SHORT_BINUNICODE + MEMOIZE."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw + b"\x94"


def sg(module: str, name: str) -> bytes:
    """STACK_GLOBAL (protocol 4)."""
    return su(module) + su(name) + b"\x93"


def g(module: str, name: str) -> bytes:
    """GLOBAL (protocol 0)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def s0(text: str) -> bytes:
    """STRING (protocol 0)."""
    return b"S" + repr(text).encode() + b"\n"


def call(func: bytes, *args: bytes) -> bytes:
    return func + b"(" + b"".join(args) + b"tR"


def p4(body: bytes) -> bytes:
    return b"\x80\x04" + body + b"."


def p0(body: bytes) -> bytes:
    return body + b"."


def touch(canary: Path) -> str:
    return f"touch {canary}"


def frame(body: bytes) -> bytes:
    return b"\x95" + struct.pack("<Q", len(body)) + body


def _split_frames(body: bytes, cut: int) -> bytes:
    """A first frame that ends inside an opcode: the C unpickler reads on, pickle.py stops."""
    return b"\x95" + struct.pack("<Q", cut) + body


class _Reduce:
    def __init__(self, func: object, *args: object) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


def dumps(func: object, *args: object, protocol: int = 4) -> bytes:
    return pickle.dumps(_Reduce(func, *args), protocol=protocol)


# ---- containers ------------------------------------------------------------------------


def make_zip(members: dict[str, bytes], *, method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def torch_zip(pkl: bytes, prefix: str = "archive") -> bytes:
    return make_zip(
        {f"{prefix}/data.pkl": pkl, f"{prefix}/version": b"3\n", f"{prefix}/byteorder": b"little"}
    )


def bad_crc_zip(payload: bytes) -> bytes:
    data = bytearray(make_zip({"archive/data.pkl": payload}))
    # Flip the CRC in both the local header (offset 14) and the central directory.
    cd = data.rfind(b"PK\x01\x02")
    for at in (14, cd + 16):
        data[at] ^= 0xFF
    return bytes(data)


def name_mismatch_zip(payload: bytes) -> bytes:
    data = bytearray(make_zip({"archive/data.pkl": payload}))
    assert data[30:46] == b"archive/data.pkl"
    data[30:46] = b"archive/data.txt"  # local header only
    return bytes(data)


def encrypted_zip(payload: bytes) -> bytes:
    data = bytearray(make_zip({"archive/data.pkl": payload}))
    cd = data.rfind(b"PK\x01\x02")
    data[6] |= 1
    data[cd + 8] |= 1
    return bytes(data)


def nested_zip(payload: bytes, depth: int = 3) -> bytes:
    inner = payload
    for level in range(depth):
        inner = make_zip({f"level{level}.bin": inner}, method=zipfile.ZIP_DEFLATED)
    return inner


def tar_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def npy_object(payload_pickle: bytes) -> bytes:
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header = header.ljust(118) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload_pickle


def legacy_torch(payload: bytes) -> bytes:
    """A legacy (non-zip) torch.save file with one float storage, then a payload pickle."""
    parts = [
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2),
        pickle.dumps(1001, protocol=2),
        pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2),
    ]
    # Main object: a persistent id naming storage "0" of type torch.FloatStorage.
    main = (
        b"\x80\x02"
        + b"(X\x07\x00\x00\x00storage"
        + g("torch", "FloatStorage")
        + b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x02Ntq\x00Q."
    )
    parts.append(main)
    parts.append(pickle.dumps(["0"], protocol=2))
    parts.append(struct.pack("<q", 2) + b"\x00" * 8)
    return b"".join(parts) + payload


# ---- the corpus ------------------------------------------------------------------------


def _os_system(c: Path) -> bytes:
    return p0(call(g("os", "system"), s0(touch(c))))


def _samples() -> list[Sample]:
    S = Sample
    out: list[Sample] = [
        # command execution
        S("os.system-proto0", "exec", _os_system, 1, "os.system"),
        S(
            "posix.system-proto2",
            "exec",
            lambda c: p4(call(sg("posix", "system"), su(touch(c)))),
            1,
            "posix.system",
        ),
        S(
            "subprocess.Popen",
            "exec",
            lambda c: p4(call(sg("subprocess", "Popen"), su(touch(c)))),
            1,
            "subprocess.Popen",
        ),
        S(
            "subprocess.check_output",
            "exec",
            lambda c: p4(call(sg("subprocess", "check_output"), su(touch(c)))),
            1,
            "subprocess.check_output",
        ),
        S(
            "pty.spawn",
            "exec",
            lambda c: p4(call(sg("pty", "spawn"), su(touch(c)))),
            1,
            "pty.spawn",
        ),
        S(
            "os.popen-inst",
            "exec",
            lambda c: p0(b"(" + s0(touch(c)) + b"ios\npopen\n"),
            1,
            "os.popen",
        ),
        S(
            "asyncio.create_subprocess_shell",
            "exec",
            lambda c: p4(call(sg("asyncio", "create_subprocess_shell"), su(touch(c)))),
            1,
            "asyncio.create_subprocess_shell",
        ),
        # eval / exec / compile
        S(
            "builtins.eval",
            "eval",
            lambda c: p4(call(sg("builtins", "eval"), su(f"__import__('os').system('touch {c}')"))),
            1,
            "builtins.eval",
        ),
        S(
            "builtins.exec",
            "eval",
            lambda c: p4(call(sg("builtins", "exec"), su(f"import os; os.system('touch {c}')"))),
            1,
            "builtins.exec",
        ),
        S(
            "__builtin__.eval-py2",
            "eval",
            lambda c: (
                b"\x80\x02"
                + call(g("__builtin__", "eval"), s0(f"__import__('os').system('touch {c}')"))
                + b"."
            ),
            1,
            "builtins.eval",
        ),
        S(
            "builtins.compile",
            "eval",
            lambda c: p4(call(sg("builtins", "compile"), su("1"), su("x"), su("eval"))),
            1,
            "builtins.compile",
        ),
        S(
            "types.FunctionType",
            "eval",
            lambda c: p4(call(sg("types", "FunctionType"), b"N", b"}")),
            1,
            "types.FunctionType",
        ),
        # importers and resolvers
        S(
            "importlib.import_module",
            "import",
            lambda c: p4(call(sg("importlib", "import_module"), su("os"))),
            1,
            "importlib.import_module",
        ),
        S(
            "builtins.__import__",
            "import",
            lambda c: p4(call(sg("builtins", "__import__"), su("os"))),
            1,
            "builtins.__import__",
        ),
        S(
            "pkgutil.resolve_name",
            "import",
            lambda c: p4(call(call(sg("pkgutil", "resolve_name"), su("os:system")), su(touch(c)))),
            1,
            "pkgutil.resolve_name",
        ),
        S(
            "runpy.run_path",
            "import",
            lambda c: p4(call(sg("runpy", "run_path"), su(str(c)))),
            1,
            "runpy.run_path",
        ),
        S(
            "operator.attrgetter",
            "import",
            lambda c: p4(call(sg("operator", "attrgetter"), su("system"))),
            1,
            "operator.attrgetter",
        ),
        # nested loaders
        S(
            "pickle.loads-nested",
            "nested",
            lambda c: p4(
                call(sg("pickle", "loads"), b"C" + bytes([len(_os_system(c))]) + _os_system(c))
            ),
            1,
            "os.system",
        ),
        S(
            "torch.load",
            "nested",
            lambda c: p4(call(sg("torch", "load"), su(str(c)))),
            1,
            "torch.load",
        ),
        S(
            "numpy.load",
            "nested",
            lambda c: p4(call(sg("numpy", "load"), su(str(c)), b"\x88")),
            1,
            "numpy.load",
        ),
        S(
            "marshal.loads",
            "nested",
            lambda c: p4(call(sg("marshal", "loads"), b"C\x01\x00")),
            1,
            "marshal.loads",
        ),
        S(
            "dill.loads",
            "nested",
            lambda c: p4(call(sg("dill", "loads"), b"C\x01\x00")),
            1,
            "dill.loads",
        ),
        # network
        S(
            "socket.create_connection",
            "network",
            lambda c: p4(call(sg("socket", "create_connection"), su("127.0.0.1"), b"K\x50\x86")),
            1,
            "socket.create_connection",
        ),
        S(
            "urllib.request.urlopen",
            "network",
            lambda c: p4(call(sg("urllib.request", "urlopen"), su("http://127.0.0.1/"))),
            1,
            "urllib.request.urlopen",
        ),
        S(
            "webbrowser.open",
            "network",
            lambda c: p4(call(sg("webbrowser", "open"), su("http://127.0.0.1/"))),
            1,
            "webbrowser.open",
        ),
        S(
            "http.client.HTTPConnection",
            "network",
            lambda c: p4(call(sg("http.client", "HTTPConnection"), su("127.0.0.1"))),
            1,
            "http.client.HTTPConnection",
        ),
        # file read / write
        S(
            "builtins.open",
            "file",
            lambda c: p4(call(sg("builtins", "open"), su(str(c)), su("w"))),
            1,
            "builtins.open",
        ),
        S(
            "shutil.rmtree",
            "file",
            lambda c: p4(call(sg("shutil", "rmtree"), su(str(c)))),
            1,
            "shutil.rmtree",
        ),
        S(
            "pathlib.Path.write_text",
            "file",
            lambda c: p4(call(sg("pathlib", "Path.write_text"), su(str(c)), su("x"))),
            1,
            "pathlib.Path.write_text",
        ),
        S(
            "io.FileIO",
            "file",
            lambda c: p4(call(sg("io", "FileIO"), su(str(c)), su("w"))),
            1,
            "io.FileIO",
        ),
        S(
            "tempfile.mkstemp",
            "file",
            lambda c: p4(call(sg("tempfile", "mkstemp"))),
            1,
            "tempfile.mkstemp",
        ),
        # debugger / profiler / timer runners
        S(
            "pdb.run",
            "runner",
            lambda c: p4(call(sg("pdb", "run"), su(f"__import__('os').system('touch {c}')"))),
            1,
            "pdb.run",
        ),
        S(
            "cProfile.run",
            "runner",
            lambda c: p4(call(sg("cProfile", "run"), su(f"__import__('os').system('touch {c}')"))),
            1,
            "cProfile.run",
        ),
        S(
            "timeit.timeit",
            "runner",
            lambda c: p4(
                call(
                    sg("timeit", "timeit"),
                    su(f"__import__('os').system('touch {c}')"),
                    su("pass"),
                    b"N",
                    b"K\x01",
                )
            ),
            1,
            "timeit.timeit",
        ),
        S(
            "bdb.Bdb.run",
            "runner",
            lambda c: p4(call(sg("bdb", "Bdb.run"), b"N", su("1"))),
            1,
            "bdb.Bdb.run",
        ),
        S(
            "trace.Trace.runctx",
            "runner",
            lambda c: p4(call(sg("trace", "Trace.runctx"), b"N", su("1"))),
            1,
            "trace.Trace",
        ),
        # package installers
        S(
            "pip.main",
            "installer",
            lambda c: p4(call(sg("pip", "main"), b"]" + su("install") + b"a")),
            1,
            "pip.main",
        ),
        S(
            "pip._internal.cli.main",
            "installer",
            lambda c: p4(call(sg("pip._internal.cli.main", "main"))),
            1,
            "pip._internal",
        ),
        S(
            "setuptools.sandbox.run_setup",
            "installer",
            lambda c: p4(call(sg("setuptools.sandbox", "run_setup"), su(str(c)))),
            1,
            "setuptools.sandbox",
        ),
        S(
            "ensurepip.bootstrap",
            "installer",
            lambda c: p4(call(sg("ensurepip", "bootstrap"))),
            1,
            "ensurepip.bootstrap",
        ),
        # attribute-chain gadgets
        S(
            "dotted-dunder-chain",
            "gadget",
            lambda c: p4(sg("torch._utils", "_rebuild_tensor_v2.__globals__")),
            1,
            "__globals__",
        ),
        S(
            "getattr-of-import",
            "gadget",
            lambda c: p4(
                call(
                    call(
                        sg("builtins", "getattr"),
                        call(sg("builtins", "__import__"), su("os")),
                        su("system"),
                    ),
                    su(touch(c)),
                )
            ),
            1,
            "pickle.call-result",
        ),
        S(
            "allowed-module-unknown-name",
            "gadget",
            lambda c: p4(sg("collections", "_sys")),
            1,
            "collections._sys",
        ),
        S(
            "build-on-global",
            "gadget",
            lambda c: p4(
                sg("collections", "OrderedDict")
                + b"N}"
                + su("__repr__")
                + sg("builtins", "eval")
                + b"s\x86b0N"
            ),
            1,
            "pickle.mutates-global",
        ),
        # memo and opcode tricks
        S(
            "stack-global-from-memo",
            "opcode",
            lambda c: p4(
                su("os")
                + b"0"
                + su("system")
                + b"0"
                + b"h\x00h\x01\x93"
                + b"("
                + su(touch(c))
                + b"tR"
            ),
            1,
            "os.system",
        ),
        S(
            "stack-global-from-STRING",
            "opcode",
            lambda c: (
                b"\x80\x04" + s0("os") + s0("system") + b"\x93" + b"(" + s0(touch(c)) + b"tR."
            ),
            1,
            "os.system",
        ),
        S(
            "stack-global-from-BINUNICODE8",
            "opcode",
            lambda c: p4(
                b"\x8d"
                + struct.pack("<Q", 2)
                + b"os"
                + b"\x8d"
                + struct.pack("<Q", 6)
                + b"system\x93"
                + b"("
                + su(touch(c))
                + b"tR"
            ),
            1,
            "os.system",
        ),
        S(
            "stack-global-dynamic",
            "opcode",
            lambda c: p4(call(sg("builtins", "str"), su("os")) + su("system") + b"\x93"),
            1,
            "STACK_GLOBAL",
        ),
        S(
            "payload-in-second-pickle",
            "opcode",
            lambda c: pickle.dumps({"weights": [1, 2]}) + _os_system(c),
            1,
            "os.system",
        ),
        S(
            "payload-after-malformed",
            "opcode",
            lambda c: b"\x80\x04K\x01\xff\xfe" + _os_system(c),
            1,
            "os.system",
        ),
        S(
            "payload-then-truncated",
            "opcode",
            lambda c: b"\x80\x04" + call(sg("os", "system"), su(touch(c))),
            1,
            "os.system",
        ),
        S(
            "frame-longer-than-data",
            "opcode",
            lambda c: (
                b"\x80\x04"
                + b"\x95"
                + struct.pack("<Q", 1 << 20)
                + call(sg("os", "system"), su(touch(c)))
                + b"."
            ),
            1,
            "os.system",
        ),
        S(
            "frames-split-opcodes",
            "opcode",
            lambda c: (
                b"\x80\x04"
                + _split_frames(su("os") + su("system") + b"\x93", 3)
                + b"("
                + su(touch(c))
                + b"tR."
            ),
            1,
            "os.system",
        ),
        S(
            "pop-mark-divergence",
            "opcode",
            lambda c: b"\x80\x04(0" + call(sg("os", "system"), su(touch(c))) + b".",
            1,
            "os.system",
        ),
        S(
            "extension-code",
            "opcode",
            lambda c: p4(b"\x82\x01" + b"(" + su(touch(c)) + b"tR"),
            1,
            "pickle.extension",
        ),
        S(
            "obj-opcode",
            "opcode",
            lambda c: p4(b"(" + sg("os", "system") + su(touch(c)) + b"o"),
            1,
            "os.system",
        ),
        S(
            "newobj-ex",
            "opcode",
            lambda c: p4(sg("subprocess", "Popen") + b"(" + su(touch(c)) + b"t}" + b"\x92"),
            1,
            "subprocess.Popen",
        ),
        S(
            "memo-index-bomb",
            "opcode",
            lambda c: p4(b"N" + b"r\xff\xff\xff\x7f"),
            1,
            "pickle.memo-index",
        ),
        S("unsupported-protocol", "opcode", lambda c: b"\x80\x06" + _os_system(c), 1, "os.system"),
        # containers
        S(
            "torch-zip-data.pkl",
            "container",
            lambda c: torch_zip(dumps(__import__("os").system, touch(c))),
            1,
            "system",
        ),
        S("zip-bad-crc", "container", lambda c: bad_crc_zip(_os_system(c)), 1, "zip.bad-crc"),
        S(
            "zip-name-mismatch",
            "container",
            lambda c: name_mismatch_zip(_os_system(c)),
            1,
            "zip.name-mismatch",
        ),
        S(
            "zip-encrypted-flag",
            "container",
            lambda c: encrypted_zip(_os_system(c)),
            1,
            "zip.encrypted",
        ),
        S("zip-nested-3", "container", lambda c: nested_zip(_os_system(c)), 1, "os.system"),
        S(
            "zip-odd-member-name",
            "container",
            lambda c: make_zip({"../../weights": _os_system(c)}),
            1,
            "os.system",
        ),
        S(
            "zip-duplicate-names",
            "container",
            lambda c: _dup_zip(_os_system(c)),
            1,
            "zip.duplicate-name",
        ),
        S(
            "zip-deflated-no-extension",
            "container",
            lambda c: make_zip({"model": _os_system(c)}, method=zipfile.ZIP_DEFLATED),
            1,
            "os.system",
        ),
        S("gzip-pickle", "container", lambda c: _gzip(_os_system(c)), 1, "os.system"),
        S(
            "tar-legacy-torch",
            "container",
            lambda c: tar_of(
                {
                    "sys_info": pickle.dumps({}),
                    "pickle": _os_system(c),
                    # torch unpickles these too: a count, records, then the storage views
                    "storages": pickle.dumps(0) + pickle.dumps([]),
                    "tensors": pickle.dumps(0),
                }
            ),
            1,
            "os.system",
        ),
        S(
            "legacy-torch-payload-after-storages",
            "container",
            lambda c: legacy_torch(_os_system(c)),
            1,
            "os.system",
        ),
        S(
            "pickle-zip-polyglot",
            "container",
            lambda c: pickle.dumps([1]) + torch_zip(_os_system(c)),
            1,  # a finding exits 1 even though the junk after the first pickle is unscannable
            "os.system",  # zipfile's reading of the file (the zip at its end) is scanned too
        ),
        S("npy-object-array", "numpy", lambda c: npy_object(_os_system(c)), 1, "os.system"),
        S(
            "npz-object-array",
            "numpy",
            lambda c: make_zip({"arr_0.npy": npy_object(_os_system(c))}),
            1,
            "os.system",
        ),
        # joblib: payloads after inline arrays, inside object arrays, compressed
        S(
            "joblib-payload-after-inline-array",
            "joblib",
            lambda c: _joblib({"w": _np().arange(1000.0), "x": _Reduce(_os().system, touch(c))}),
            1,
            "system",
        ),
        S(
            "joblib-object-array",
            "joblib",
            lambda c: _joblib({"w": _np().array([_Reduce(_os().system, touch(c))], dtype=object)}),
            1,
            "system",
        ),
        S(
            "joblib-zlib-compressed",
            "joblib",
            lambda c: _joblib(
                {"w": _np().ones(64), "x": _Reduce(_os().system, touch(c))}, compress=3
            ),
            1,
            "system",
        ),
        S(
            "joblib-xz-compressed",
            "joblib",
            lambda c: _joblib(
                {"w": _np().ones(64), "x": _Reduce(_os().system, touch(c))}, compress=("xz", 3)
            ),
            1,
            "system",
        ),
    ]
    return out


def _np() -> ModuleType:
    import numpy

    return numpy


def _os() -> ModuleType:
    import os

    return os


def _joblib(value: object, **kwargs: object) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(value, buf, **kwargs)
    return buf.getvalue()


def _dup_zip(payload: bytes) -> bytes:
    buf = io.BytesIO()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("archive/data.pkl", pickle.dumps([1]))
            zf.writestr("archive/data.pkl", payload)
    return buf.getvalue()


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


def crc_ok(data: bytes) -> int:
    return zlib.crc32(data)


SAMPLES: list[Sample] = _samples()
