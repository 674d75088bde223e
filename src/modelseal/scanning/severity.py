"""Deny-list knowledge used only to rank findings; it never decides what is safe."""

from __future__ import annotations

from modelseal.scanning.report import Severity

# Importing or calling anything from these modules can run code, touch files or the network.
_CRITICAL_MODULES = frozenset(
    """os posix nt subprocess sys builtins __builtin__ __builtins__ importlib imp pkgutil runpy
    zipimport pickle _pickle cPickle dill cloudpickle marshal shelve joblib socket ssl http urllib
    urllib2 httplib requests httpx aiohttp ftplib smtplib poplib imaplib telnetlib nntplib
    xmlrpc webbrowser shutil pty code codeop pdb bdb cProfile profile timeit trace tracemalloc
    asyncio multiprocessing concurrent threading _thread ctypes cffi pip setuptools distutils
    ensurepip venv tempfile glob pathlib io _io fileinput linecache tarfile zipfile sqlite3 signal
    sched commands popen2 platform _posixsubprocess _osx_support site sysconfig types inspect
    gc operator _operator functools copy copyreg copy_reg ast dis compileall py_compile
    torch.hub torch.jit torch.package torch.serialization torch.load numpy.lib.npyio
    numpy.load keras tensorflow uuid socketserver wsgiref logging.config""".split()
)
_CRITICAL_NAMES = frozenset(
    """eval exec compile __import__ open getattr setattr delattr globals locals vars breakpoint
    input apply execfile system popen spawn load loads call check_output check_call run Popen
    import_module attrgetter methodcaller itemgetter partial reduce __reduce__ __reduce_ex__
    __getattribute__ __globals__ __builtins__ __subclasses__ __code__ __class__ __init__
    __dict__ __setstate__ fromfile memmap urlopen urlretrieve create_connection""".split()
)


def rank_global(module: str, name: str) -> tuple[Severity, str]:
    """Severity of importing ``module.name`` and why, for a global that is not allow-listed."""
    parts = module.split(".")
    tops = {".".join(parts[: i + 1]) for i in range(len(parts))}
    leaf = name.split(".")
    if any(p.startswith("__") and p.endswith("__") for p in leaf[1:]) or len(leaf) > 1 and any(
        p in _CRITICAL_NAMES for p in leaf
    ):
        return Severity.CRITICAL, "attribute chain reaches into an object's internals"
    if tops & _CRITICAL_MODULES:
        return Severity.CRITICAL, (
            "can execute code, load nested pickles, start processes, or touch files/network"
        )
    if any(p in _CRITICAL_NAMES for p in leaf):
        return Severity.CRITICAL, "name of a function that runs code, loads data or resolves names"
    return Severity.MEDIUM, "not on the allow-list: importing it runs that module's code"
