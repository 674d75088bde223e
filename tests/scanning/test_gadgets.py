"""Gadgets are ranked by what they can do: one test per capability family, pickles built here.

Each family lists globals a real attack could use; every one must come out of a scan with the
family's severity and its capability named in the message, whichever opcode imports it.
"""

from __future__ import annotations

import pytest

from modelseal.scanning.engine import Options, scan_bytes
from modelseal.scanning.report import Finding, Severity
from modelseal.scanning.severity import Capability, capabilities, rank_global
from tests.scanning.scan_samples import call, g, p0, p4, sg, su

FAMILIES: dict[Capability, list[str]] = {
    Capability.RUN_CODE: [
        "builtins:eval",
        "builtins:exec",
        "builtins:compile",
        "code:InteractiveInterpreter",
        "code:InteractiveConsole",
        "codeop:compile_command",
        "timeit:timeit",
        "timeit:Timer",
        "cProfile:run",
        "cProfile:runctx",
        "profile:run",
        "trace:Trace",
        "pdb:run",
        "pdb:Pdb",
        "bdb:Bdb",
        "runpy:run_path",
        "runpy:run_module",
        "runpy:_run_code",
        "doctest:debug_script",
        "doctest:debug_src",
        "doctest:run_docstring_examples",
        "numpy.testing._private.utils:runstring",
        "torch.fx.graph_module:reduce_graph_module",
        "torch.fx.graph_module:reduce_package_graph_module",
        "torch.fx.graph_module:_deserialize_graph_module",
        "torch.utils.benchmark:Timer",
        "torch.utils.benchmark.utils.timer:Timer",
        "torch.jit:CompilationUnit",
        "types:FunctionType",
        "types:CodeType",
        "IPython.core.interactiveshell:InteractiveShell",
        "pandas:eval",
        "torch.hub:load",
        "transformers.dynamic_module_utils:get_class_from_dynamic_module",
    ],
    Capability.RUN_PROGRAM: [
        "os:system",
        "posix:system",
        "nt:system",
        "os:popen",
        "os:execv",
        "subprocess:Popen",
        "subprocess:run",
        "subprocess:check_output",
        "pty:spawn",
        "_posixsubprocess:fork_exec",
        "pydoc:pipepager",
        "pydoc:tempfilepager",
        "webbrowser:open",
        "asyncio:create_subprocess_shell",
        "asyncio.subprocess:create_subprocess_exec",
        "multiprocessing:Process",
        "uuid:_get_command_stdout",
        "platform:popen",
        "imaplib:IMAP4_stream",
        "torch.utils.cpp_extension:load_inline",
        "torch.utils.cpp_extension:load",
        "pip._internal.cli.main:main",
        "some.unknown.module:popen",
    ],
    Capability.NATIVE_CODE: [
        "ctypes:CDLL",
        "ctypes:cdll",
        "_ctypes:dlopen",
        "torch.ops:load_library",
        "torch.classes:load_library",
        "cffi:FFI",
        "numpy.ctypeslib:load_library",
    ],
    Capability.IMPORT: [
        "builtins:__import__",
        "importlib:import_module",
        "importlib.util:spec_from_file_location",
        "pkgutil:resolve_name",
        "zipimport:zipimporter",
        "pydoc:locate",
        "torch.package:PackageImporter",
        "torch.package.package_importer:PackageImporter",
        "torch._utils:_import_dotted_name",
        "logging.config:_resolve",
        "unittest.mock:_importer",
    ],
    Capability.NESTED_LOAD: [
        "pickle:loads",
        "_pickle:loads",
        "pickle:Unpickler",
        "marshal:loads",
        "torch:load",
        "torch.serialization:load",
        "torch.storage:_load_from_bytes",
        "numpy:load",
        "joblib:load",
        "shelve:open",
        "yaml:unsafe_load",
        "pandas:read_pickle",
        "copyreg:_extension_registry",
    ],
    Capability.REFLECTION: [
        "builtins:getattr",
        "builtins:setattr",
        "builtins:vars",
        "builtins:globals",
        "operator:attrgetter",
        "operator:methodcaller",
        "_operator:attrgetter",
        "functools:partial",
        "functools:reduce",
        "inspect:getmembers",
        "gc:get_objects",
        "sys:modules",
        "collections:OrderedDict.__init__.__globals__",
        "atexit:register",
        "threading:Thread",
        "threading:Timer",
    ],
    Capability.WRITE_FILE: [
        "builtins:open",
        "io:open",
        "_io:FileIO",
        "codecs:open",
        "logging:FileHandler",
        "logging.handlers:RotatingFileHandler",
        "shutil:copyfile",
        "shutil:rmtree",
        "tempfile:NamedTemporaryFile",
        "tarfile:TarFile.extractall",
        "zipfile:ZipFile",
        "numpy:save",
        "torch:save",
        "pathlib:Path.write_text",
        "sqlite3:connect",
        "py_compile:compile",
        "compileall:compile_dir",
    ],
    Capability.NETWORK: [
        "socket:socket",
        "socket:create_connection",
        "http.client:HTTPConnection",
        "urllib.request:urlopen",
        "smtplib:SMTP",
        "ftplib:FTP",
        "telnetlib:Telnet",
        "xmlrpc.client:ServerProxy",
        "requests:get",
        "socketserver:TCPServer",
        "asyncio:open_connection",
        "multiprocessing.connection:Client",
        "logging.handlers:SocketHandler",
        "logging.config:listen",
        "pandas:read_csv",
        "pandas:read_html",
    ],
    Capability.READ_FILE: [
        "glob:glob",
        "linecache:getline",
        "pathlib:Path.read_text",
        "numpy:fromfile",
        "numpy:loadtxt",
    ],
    Capability.PROCESS: [
        "threading:Lock",
        "signal:signal",
        "faulthandler:enable",
        "resource:setrlimit",
    ],
}

CASES = [(cap, entry) for cap, entries in FAMILIES.items() for entry in entries]


def _scan(data: bytes) -> list[Finding]:
    report = scan_bytes(data, Options())
    return [f for f in report.findings if f.rule == "pickle.global"]


def _check(findings: list[Finding], module: str, name: str, cap: Capability) -> None:
    subject = f"{module}.{name}"
    hits = [f for f in findings if f.subject == subject]
    assert hits, [f.subject for f in findings]
    assert hits[0].severity == cap.severity, hits[0]
    assert cap.id in hits[0].message, hits[0].message


@pytest.mark.parametrize(("cap", "entry"), CASES, ids=[e for _, e in CASES])
def test_gadget_is_ranked_by_capability(cap: Capability, entry: str) -> None:
    module, name = entry.split(":")
    assert cap in capabilities(module, name)
    assert rank_global(module, name)[0] == cap.severity
    # Protocol 4 (STACK_GLOBAL + REDUCE) and protocol 0 (GLOBAL + REDUCE) reach it alike.
    _check(_scan(p4(call(sg(module, name), su("x")))), module, name, cap)
    _check(_scan(p0(call(g(module, name), b"S'x'\n"))), module, name, cap)


@pytest.mark.parametrize("cap", list(Capability), ids=lambda c: c.id)
def test_every_capability_has_a_family(cap: Capability) -> None:
    assert len(FAMILIES[cap]) >= 4
    assert cap.text and cap.id


def test_partial_wrapping_a_dangerous_callable_reports_both() -> None:
    data = p4(call(sg("functools", "partial"), sg("os", "system"), su("id")) + b")R")
    subjects = {f.subject: f.severity for f in _scan(data)}
    assert subjects["functools.partial"] == Severity.CRITICAL
    assert subjects["os.system"] == Severity.CRITICAL


def test_getattr_chain_reports_every_link() -> None:
    # getattr(__import__("os"), "system")("id")
    imp = call(sg("builtins", "__import__"), su("os"))
    data = p4(call(call(sg("builtins", "getattr"), imp, su("system")), su("id")))
    report = scan_bytes(data, Options())
    subjects = {f.subject for f in report.findings}
    assert {"builtins.getattr", "builtins.__import__"} <= subjects
    assert any(f.rule == "pickle.call-result" for f in report.findings)


def test_unknown_global_stays_medium() -> None:
    findings = _scan(p4(call(sg("mypkg.layers", "Dense"), su("x"))))
    assert [f.severity for f in findings] == [Severity.MEDIUM]
    assert rank_global("mypkg.layers", "Dense")[0] == Severity.MEDIUM


def test_harmless_names_in_risky_looking_modules_are_not_overranked() -> None:
    # A class called like a verb in a plain package is unknown, not critical.
    assert rank_global("mypkg", "Mover")[0] == Severity.MEDIUM
    assert rank_global("dataclasses", "replace")[0] == Severity.MEDIUM
