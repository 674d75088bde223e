"""Rank a global that is not allow-listed by what it can do; this never decides what is safe.

Every entry of the tables below names a *capability*: what a loader hands the pickle's author by
importing (and usually calling) that global. The worst capability of a global decides its
severity. Globals of no known capability are still findings, ranked medium, because importing a
module runs its code and the allow-list did not vouch for it.
"""

from __future__ import annotations

import dataclasses
import enum

from modelseal.scanning.report import Severity


@dataclasses.dataclass(frozen=True)
class _Cap:
    id: str
    severity: Severity
    text: str


class Capability(enum.Enum):
    """What a callable can do when a loader imports and calls it."""

    RUN_CODE = _Cap(
        "run-code", Severity.CRITICAL, "evaluates a string, code object or script as Python code"
    )
    RUN_PROGRAM = _Cap("run-program", Severity.CRITICAL, "starts a program or a shell command")
    NATIVE_CODE = _Cap(
        "native-code", Severity.CRITICAL, "loads or compiles native code into the process"
    )
    IMPORT = _Cap(
        "import-by-name", Severity.CRITICAL, "imports a module or resolves an object by its name"
    )
    NESTED_LOAD = _Cap(
        "nested-load",
        Severity.CRITICAL,
        "deserialises further data (a nested pickle, marshal code, YAML objects) without checks",
    )
    REFLECTION = _Cap(
        "reflection",
        Severity.CRITICAL,
        "reaches arbitrary attributes or calls arbitrary callables: the link of a gadget chain",
    )
    WRITE_FILE = _Cap(
        "write-file", Severity.CRITICAL, "creates, overwrites, extracts or deletes files"
    )
    NETWORK = _Cap("network", Severity.CRITICAL, "opens a network connection or a server")
    READ_FILE = _Cap("read-file", Severity.HIGH, "reads local files or lists directories")
    PROCESS = _Cap(
        "process-state",
        Severity.HIGH,
        "changes the interpreter or process (threads, signals, tracing, settings)",
    )

    @property
    def id(self) -> str:
        """The stable identifier (``run-code``), as documented in docs/scan-rules.md."""
        return self.value.id

    @property
    def severity(self) -> Severity:
        """How bad this capability is."""
        return self.value.severity

    @property
    def text(self) -> str:
        """What the capability lets a pickle do, for messages."""
        return self.value.text


C = Capability


def _w(text: str) -> list[str]:
    """The words of ``text`` (the tables below list names separated by spaces)."""
    return text.split()


# Whole modules (and their submodules): every global there has at least this capability.
MODULES: dict[str, Capability] = {
    **dict.fromkeys(
        _w(
            "code codeop timeit cProfile profile trace pdb bdb runpy doctest types dis "
            "IPython jinja2 mako sympy torch.fx torch.jit torch._dynamo torch.compiler "
            "torch.utils.benchmark torch._inductor numpy.testing numpy.f2py dill cloudpickle "
            "tensorflow keras idlelib"
        ),
        C.RUN_CODE,
    ),
    **dict.fromkeys(
        _w(
            "os posix nt subprocess _posixsubprocess pty commands popen2 pipes webbrowser "
            "multiprocessing concurrent.futures.process asyncio.subprocess pip ensurepip venv "
            "setuptools distutils _osx_support mailcap numpy.distutils"
        ),
        C.RUN_PROGRAM,
    ),
    **dict.fromkeys(
        _w("ctypes _ctypes cffi torch.utils.cpp_extension torch.ops torch.classes"),
        C.NATIVE_CODE,
    ),
    **dict.fromkeys(
        _w(
            "importlib imp pkgutil zipimport torch.package site sysconfig "
            "pkg_resources unittest.mock"
        ),
        C.IMPORT,
    ),
    **dict.fromkeys(
        _w(
            "pickle _pickle cPickle pickletools marshal shelve joblib torch.serialization "
            "copyreg copy_reg jsonpickle yaml ruamel.yaml"
        ),
        C.NESTED_LOAD,
    ),
    **dict.fromkeys(
        _w(
            "builtins __builtin__ __builtins__ operator _operator functools inspect gc sys "
            "copy weakref ast"
        ),
        C.REFLECTION,
    ),
    **dict.fromkeys(
        _w(
            "shutil tempfile tarfile zipfile io _io fileinput dbm sqlite3 py_compile "
            "compileall zipapp fsspec logging.handlers"
        ),
        C.WRITE_FILE,
    ),
    **dict.fromkeys(
        _w(
            "socket _socket ssl http urllib urllib2 urllib3 httplib requests httpx aiohttp "
            "ftplib smtplib smtpd poplib imaplib telnetlib nntplib xmlrpc socketserver "
            "wsgiref asyncore asynchat asyncio multiprocessing.connection huggingface_hub "
            "paramiko boto3 botocore zmq logging.config"
        ),
        C.NETWORK,
    ),
    **dict.fromkeys(_w("glob pathlib linecache filecmp mmap netrc"), C.READ_FILE),
    **dict.fromkeys(
        _w("threading _thread signal sched tracemalloc faulthandler atexit resource"),
        C.PROCESS,
    ),
}

# Exact ``module.name`` globals in otherwise harmless modules (or worse than their module).
GLOBALS: dict[str, Capability] = {
    # Downloads and runs a repository's code (hubconf.py, modeling_*.py).
    **dict.fromkeys(
        _w(
            "torch.hub transformers.dynamic_module_utils "
            "transformers.dynamic_module_utils.get_class_from_dynamic_module"
        ),
        C.RUN_CODE,
    ),
    # Call whatever callable they are given, later or elsewhere.
    **dict.fromkeys(
        _w(
            "atexit.register threading.Thread threading.Timer sched.scheduler "
            "_thread.start_new_thread"
        ),
        C.REFLECTION,
    ),
    # pandas readers fetch URLs as well as local files.
    **dict.fromkeys(
        [
            f"pandas.{name}"
            for name in _w(
                "read_csv read_json read_html read_xml read_excel read_parquet read_table "
                "read_fwf read_feather read_orc read_sas read_spss read_stata read_sql"
            )
        ],
        C.NETWORK,
    ),
    **dict.fromkeys(
        _w(
            "builtins.eval builtins.exec builtins.compile builtins.execfile builtins.breakpoint "
            "numpy.testing._private.utils.runstring numpy.testing.runstring "
            "torch.fx.graph_module.reduce_graph_module "
            "torch.fx.graph_module.reduce_package_graph_module "
            "torch.fx.graph_module.reduce_deploy_graph_module "
            "torch.fx.graph_module._deserialize_graph_module torch.fx.GraphModule "
            "torch.utils.benchmark.Timer torch.utils.benchmark.utils.timer.Timer "
            "doctest.debug_script doctest.debug_src doctest.run_docstring_examples "
            "doctest.script_from_examples code.InteractiveInterpreter code.InteractiveConsole "
            "code.interact cProfile.run cProfile.runctx profile.run profile.runctx "
            "trace.Trace pdb.run pdb.runeval pdb.runctx pdb.runcall timeit.timeit timeit.repeat "
            "timeit.Timer runpy.run_path runpy.run_module runpy._run_code "
            "runpy._run_module_code pandas.eval pandas.core.computation.eval.eval "
            "sympy.sympify numpy.lib.utils.safe_eval types.FunctionType types.CodeType "
            "types.LambdaType functools.singledispatch"
        ),
        C.RUN_CODE,
    ),
    **dict.fromkeys(
        _w(
            "pydoc.pipepager pydoc.tempfilepager pydoc.pager pydoc.getpager "
            "asyncio.create_subprocess_shell asyncio.create_subprocess_exec "
            "asyncio.subprocess.create_subprocess_shell "
            "asyncio.subprocess.create_subprocess_exec uuid._get_command_stdout "
            "ctypes.util.find_library platform.popen platform._syscmd_file "
            "platform._syscmd_ver imaplib.IMAP4_stream webbrowser.open "
            "webbrowser.GenericBrowser webbrowser.BackgroundBrowser "
            "torch.utils.cpp_extension.load_inline torch.utils.cpp_extension.load"
        ),
        C.RUN_PROGRAM,
    ),
    **dict.fromkeys(
        _w(
            "builtins.__import__ pydoc.locate pydoc.safeimport "
            "logging.config._resolve logging.config.BaseConfigurator "
            "torch.package.PackageImporter torch.package.package_importer.PackageImporter "
            "torch._utils._import_dotted_name dill._dill._import_module "
            "importlib.import_module importlib.metadata.EntryPoint numpy.lib.utils.lookfor"
        ),
        C.IMPORT,
    ),
    **dict.fromkeys(
        _w(
            "torch.load torch.storage._load_from_bytes numpy.load numpy.lib.npyio.load "
            "numpy.loads numpy.core.numeric.loads pandas.read_pickle "
            "pandas.io.pickle.read_pickle joblib.load"
        ),
        C.NESTED_LOAD,
    ),
    **dict.fromkeys(
        _w(
            "builtins.open io.open codecs.open logging.FileHandler logging.basicConfig "
            "logging.handlers.RotatingFileHandler logging.handlers.TimedRotatingFileHandler "
            "logging.handlers.WatchedFileHandler numpy.save numpy.savez numpy.savetxt "
            "numpy.tofile numpy.memmap numpy.core.memmap.memmap torch.save "
            "shutil.unpack_archive tempfile.NamedTemporaryFile tempfile.mkstemp "
            "tempfile.mkdtemp tempfile.TemporaryDirectory"
        ),
        C.WRITE_FILE,
    ),
    **dict.fromkeys(
        _w(
            "logging.handlers.SocketHandler logging.handlers.DatagramHandler "
            "logging.handlers.HTTPHandler logging.handlers.SMTPHandler "
            "logging.handlers.SysLogHandler logging.config.listen"
        ),
        C.NETWORK,
    ),
    **dict.fromkeys(
        _w("numpy.fromfile numpy.loadtxt numpy.genfromtxt builtins.input"), C.READ_FILE
    ),
    **dict.fromkeys(
        _w(
            "builtins.getattr builtins.setattr builtins.delattr builtins.globals "
            "builtins.locals builtins.vars builtins.type operator.attrgetter "
            "operator.methodcaller operator.getitem operator.setitem functools.partial "
            "functools.partialmethod functools.reduce"
        ),
        C.REFLECTION,
    ),
}

# The last part of a name, in any module: these names almost always mean the capability.
NAMES: dict[str, Capability] = {
    **dict.fromkeys(
        _w(
            "eval exec execfile compile runctx runcode runsource runstring run_path run_module "
            "_run_code interact InteractiveInterpreter InteractiveConsole safe_eval "
            "reduce_graph_module reduce_package_graph_module _forward_from_src "
            "compile_command sympify run runcall"
        ),
        C.RUN_CODE,
    ),
    **dict.fromkeys(
        _w(
            "system popen popen2 popen3 popen4 spawn spawnl spawnlp spawnv spawnvp spawnve "
            "posix_spawn posix_spawnp execl execle execlp execv execve execvp execvpe "
            "fork forkpty Popen call check_call check_output getoutput getstatusoutput "
            "fork_exec startfile pipepager tempfilepager load_inline"
        ),
        C.RUN_PROGRAM,
    ),
    **dict.fromkeys(_w("CDLL PyDLL WinDLL LoadLibrary dlopen load_library"), C.NATIVE_CODE),
    **dict.fromkeys(
        _w(
            "__import__ import_module load_module locate resolve_name _import_dotted_name "
            "find_class PackageImporter _import_module"
        ),
        C.IMPORT,
    ),
    **dict.fromkeys(
        _w(
            "load loads _loads _load_from_bytes read_pickle unsafe_load full_load "
            "load_all unsafe_load_all Unpickler"
        ),
        C.NESTED_LOAD,
    ),
    **dict.fromkeys(
        _w(
            "getattr setattr delattr globals locals vars attrgetter methodcaller partial "
            "reduce __reduce__ __reduce_ex__ __getattribute__ __getattr__ __globals__ "
            "__builtins__ __subclasses__ __code__ __class__ __init__ __dict__ __setstate__ "
            "__call__ __self__ __func__ __module__ __bases__ __mro__"
        ),
        C.REFLECTION,
    ),
    **dict.fromkeys(
        _w(
            "open write_text write_bytes extractall FileHandler mkstemp mkdtemp "
            "NamedTemporaryFile copyfile copytree rmtree unlink "
            "symlink_to memmap savetxt tofile "
            "unpack_archive"
        ),
        C.WRITE_FILE,
    ),
    **dict.fromkeys(
        _w(
            "urlopen urlretrieve create_connection socket socketpair create_server "
            "open_connection start_server SocketHandler HTTPConnection HTTPSConnection SMTP "
            "SMTP_SSL FTP"
        ),
        C.NETWORK,
    ),
    **dict.fromkeys(_w("fromfile read_text read_bytes loadtxt genfromtxt"), C.READ_FILE),
}

_UNKNOWN = "not on the allow-list: importing it runs that module's code"


def _prefixes(dotted: str) -> list[str]:
    parts = dotted.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def capabilities(module: str, name: str) -> list[Capability]:
    """Every capability known for the global ``module.name`` (``name`` may be dotted), worst
    first; empty for a global of no known capability."""
    found: list[Capability] = []
    for prefix in _prefixes(module):
        if prefix in MODULES:
            found.append(MODULES[prefix])
    full = f"{module}.{name}"
    for prefix in _prefixes(full):
        if prefix in GLOBALS:
            found.append(GLOBALS[prefix])
    leaf = name.split(".")
    for part in leaf:
        if part in NAMES and (part == leaf[-1] or len(leaf) > 1):
            found.append(NAMES[part])
    if any(p.startswith("__") and p.endswith("__") for p in leaf[1:]):
        found.append(C.REFLECTION)  # an attribute chain into an object's internals
    order = list(Capability)
    return sorted(set(found), key=lambda c: (-c.severity, order.index(c)))


def rank_global(module: str, name: str) -> tuple[Severity, str]:
    """Severity of importing ``module.name`` and why, for a global that is not allow-listed."""
    caps = capabilities(module, name)
    if not caps:
        return Severity.MEDIUM, _UNKNOWN
    worst = caps[0]
    extra = [c.id for c in caps[1:] if c is not worst]
    also = f" (also: {', '.join(extra)})" if extra else ""
    return worst.severity, f"{worst.id}: {worst.text}{also}"


__all__ = ["GLOBALS", "MODULES", "NAMES", "Capability", "capabilities", "rank_global"]
