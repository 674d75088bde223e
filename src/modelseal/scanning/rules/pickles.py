"""Rules of the pickle model (:mod:`modelseal.scanning.pickle_vm`)."""

from __future__ import annotations

from modelseal.scanning.report import Severity
from modelseal.scanning.rules.rule import Rule

_CWE_DESERIALIZE = (502,)

PICKLE_GLOBAL = Rule(
    "pickle.global",
    Severity.CRITICAL,
    "the pickle imports a global that is not on the allow-list",
    "GLOBAL, STACK_GLOBAL and INST import any module and fetch any attribute of it; REDUCE, "
    "NEWOBJ and BUILD then call it with arguments from the file. A function that runs code "
    "(os.system, builtins.exec, subprocess.Popen, importlib, runpy...), opens files or "
    "sockets, or resolves names is arbitrary code execution at load time; an unknown class "
    "still runs its module's import-time code.",
    "Do not load the file unless you trust its origin. If the global is a plain class of a "
    "library you trust, allow it explicitly (--allow module.name, or [scan] allow = [...] in "
    "an allow-list file) and scan again; prefer weights-only formats such as safetensors.",
    lowest=Severity.MEDIUM,
    cwe=_CWE_DESERIALIZE,
    cve=("CVE-2025-32434",),
)
PICKLE_DYNAMIC_GLOBAL = Rule(
    "pickle.dynamic-global",
    Severity.CRITICAL,
    "the pickle imports a global whose name is computed at load time",
    "STACK_GLOBAL takes the module and name from the stack; when they come from a call's "
    "result (or another value only known at load time) no scanner can tell what is imported, "
    "which is how payloads hide from name-based scanners.",
    "Do not load the file; no allow-list entry can make it safe.",
    cwe=_CWE_DESERIALIZE,
)
PICKLE_CALL_RESULT = Rule(
    "pickle.call-result",
    Severity.HIGH,
    "the pickle calls an object returned by another call",
    "Calling the result of a call (getattr(obj, name)(...)) reaches attributes of allowed "
    "objects that were never allowed themselves: an attribute-chain gadget that turns a "
    "harmless import into code execution.",
    "Do not load the file unless you trust its origin; data-only models never need it.",
    cwe=_CWE_DESERIALIZE,
)
PICKLE_MUTATES_GLOBAL = Rule(
    "pickle.mutates-global",
    Severity.HIGH,
    "the pickle modifies an imported object itself",
    "BUILD, APPEND or SETITEM applied to an imported module, class or function changes it for "
    "the whole process: it can replace methods, configuration or security checks that code "
    "running later relies on.",
    "Do not load the file unless you trust its origin.",
    cwe=(502, 915),
)
PICKLE_EXTENSION = Rule(
    "pickle.extension",
    Severity.HIGH,
    "the pickle imports a global through a copyreg extension code",
    "EXT1/EXT2/EXT4 import whatever global the loading process registered under a number "
    "(copyreg.add_extension); what that is depends on the process, not on the file, so it "
    "cannot be checked.",
    "Do not load the file unless you control every extension code the loading process registers.",
    cwe=_CWE_DESERIALIZE,
)
PICKLE_MEMO_INDEX = Rule(
    "pickle.memo-index",
    Severity.MEDIUM,
    "the pickle uses a huge memo index",
    "PUT with an index far beyond the memo's size makes the real unpickler allocate memory in "
    "proportion to the index: a denial of service with a few bytes.",
    "Do not load the file; a pickler never writes such indices.",
    cwe=(789,),
)
PICKLE_LIMIT = Rule(
    "pickle.limit",
    Severity.HIGH,
    "the pickle exceeds a resource limit of the scanner",
    "A stack, memo or mark stack this large, or this many pickles in one stream, exhausts "
    "memory when the file is loaded (an expansion attack); the scan stops there, so the rest "
    "is not checked.",
    "Do not load the file. If it is a genuine, trusted model, raise the scan's limits "
    "(modelseal.scan(..., limits=Limits(...))) and scan again.",
    cwe=(400,),
)
