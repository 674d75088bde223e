"""Run CPython's real C unpickler harmlessly and record what it does, for differential tests.

``find_class`` is overridden: it records ``(module, name)`` and returns an inert stand-in class
(it refuses names the import system could never resolve, as a real import would). Calling a
stand-in records the call and returns a fresh stand-in; BUILD, APPEND(S), SETITEM(S) and ADDITEMS
on one do nothing. Nothing from the data is ever imported or executed.
"""

from __future__ import annotations

import copyreg
import io
import pickle
from typing import Any

Event = tuple[str, ...]

EXTENSIONS = {1: ("os", "system"), 2: ("collections", "OrderedDict"), 300: ("a.b", "c")}


def _dotted(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


class _Meta(type):
    """Class-level behaviour of the stand-ins (a stand-in is itself a class)."""

    events: list[Event]
    label: str

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        cls.events.append(("call", cls.label))
        return _standin(cls.events, "<made>")

    def __setstate__(cls, state: Any) -> None:
        pass

    def append(cls, item: Any) -> None:
        pass

    def extend(cls, items: Any) -> None:
        pass

    def add(cls, item: Any) -> None:
        pass

    def __setitem__(cls, key: Any, value: Any) -> None:
        pass


def _new(cls: Any, *args: Any, **kwargs: Any) -> Any:
    cls.events.append(("call", cls.label))
    return _standin(cls.events, "<made>")


def _standin(events: list[Event], label: str) -> Any:
    return _Meta("StandIn", (), {"events": events, "label": label, "__new__": _new})


class TracingUnpickler(pickle.Unpickler):
    """The C unpickler (``_pickle.Unpickler``) with a recording, inert ``find_class``."""

    def __init__(self, file: Any, events: list[Event]) -> None:
        super().__init__(file)
        self.events = events

    def find_class(self, module: str, name: str) -> Any:
        if not (_dotted(module) and _dotted(name)):
            raise ModuleNotFoundError(f"no module named {module!r}")
        self.events.append(("global", module, name))
        return _standin(self.events, f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        self.events.append(("persid",))
        return _standin(self.events, "<persistent>")


def _register() -> None:
    for code, (module, name) in EXTENSIONS.items():
        copyreg.add_extension(module, name, code)
    copyreg._extension_cache.clear()  # type: ignore[attr-defined]


def _unregister() -> None:
    # Registered codes change how the whole process *pickles* those globals: never leak them.
    for code, (module, name) in EXTENSIONS.items():
        copyreg.remove_extension(module, name, code)
    copyreg._extension_cache.clear()  # type: ignore[attr-defined]


def trace(data: bytes, mode: str) -> list[Event]:
    """What the real unpickler does with ``data``, as events (``global``, ``call``, ``persid``,
    ``stop`` after each pickle, ``error`` when it raises, which ends the trace). ``loads``: one
    pickle read from memory; ``buffered``: ``pickle.load`` repeated on a ``BufferedReader`` that
    peeks everything (torch's legacy reader); ``file``: repeated on a peek-less ``io.BytesIO``
    until its end (what ``torch.load`` does with a zip member)."""
    events: list[Event] = []
    raw = io.BytesIO(data)
    _register()
    try:
        if mode == "file":
            while raw.tell() < len(data):
                TracingUnpickler(raw, events).load()
                events.append(("stop",))
        else:
            # Everything is peeked at once: every read is served from memory, as in loads.
            buffered = io.BufferedReader(raw, buffer_size=1 << 20)
            while True:
                TracingUnpickler(buffered, events).load()
                events.append(("stop",))
                if mode == "loads" or not buffered.peek(1):
                    break
    except Exception:
        events.append(("error",))
    finally:
        _unregister()
    return events
