"""The served models: loading each through every check, swapping versions atomically, and
saying why a model is not ready.

A model is served only once it verified, scanned clean, passed its gate (when required) and
loaded. A new version (its alias moved, or a reload) is loaded beside the running one and
swapped in with one assignment, so a request sees either the old or the new model, never a
failure in between; a new version that fails any check is not swapped in, the old one keeps
serving, and the failure is counted, audited and shown on the ready endpoint.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable
from typing import Any

from modelseal.errors import ModelNotReadyError, ModelNotServedError, ModelsealError, first_line
from modelseal.serving.metrics import ServerMetrics, reason_of
from modelseal.serving.shadow import Shadow
from modelseal.serving.source import Loaded, ModelSource, load_source

READY, LOADING, FAILED, UNLOADED = "READY", "LOADING", "UNAVAILABLE", "UNLOADED"

# (event, model, details) -> None: where loads, swaps, refusals and unloads are recorded.
Recorder = Callable[[str, str, dict[str, Any]], None]


@dataclasses.dataclass
class Entry:
    """One model name: what it serves now and the state of its last load; and the candidate
    its traffic is mirrored to, if any."""

    source: ModelSource
    current: Loaded | None = None
    state: str = LOADING
    reason: str = ""
    shadow_source: ModelSource | None = None
    shadow: Shadow | None = None
    shadow_reason: str = ""
    # The last version that failed to load (and its shadow's): not retried every poll.
    refused: tuple[str, str] | None = None
    shadow_refused: tuple[str, str] | None = None


class Repository:
    """The models a server serves, by name."""

    def __init__(
        self,
        sources: Iterable[ModelSource],
        *,
        shadows: Iterable[ModelSource] = (),
        backend: Callable[[], Any] | None = None,
        metrics: ServerMetrics | None = None,
        record: Recorder | None = None,
    ) -> None:
        self.entries: dict[str, Entry] = {}
        for source in sources:
            if source.name in self.entries:
                raise ModelsealError(
                    f"two models are named {source.name!r}", hint="name each model once (NAME=)"
                )
            self.entries[source.name] = Entry(source)
        for candidate in shadows:
            if candidate.name not in self.entries:
                raise ModelsealError(
                    f"shadow {candidate.label} names no served model {candidate.name!r}",
                    hint="give the shadow the name of a served model (NAME=REF)",
                )
            self.entries[candidate.name].shadow_source = candidate
        self._backend = backend
        self.metrics = metrics or ServerMetrics()
        self._record = record
        self._lock = threading.Lock()  # one load at a time per server

    # ----------------------------------------------------------------------- lookups

    def get(self, name: str, version: str | None = None) -> Loaded:
        """The ready model ``name`` (at ``version`` when given)."""
        entry = self.entries.get(name)
        if entry is None:
            raise ModelNotServedError(f"unknown model {name!r}", hint="see /v2/repository/index")
        current = entry.current
        if current is None:
            why = f": {entry.reason}" if entry.reason else ""
            raise ModelNotReadyError(
                f"model {name!r} is not ready{why}", hint="see its ready route"
            )
        if version is not None and version != current.version:
            raise ModelNotServedError(
                f"model {name!r} serves version {current.version}, not {version!r}",
                hint=f"ask for version {current.version} or leave the version out",
            )
        return current

    def ready(self) -> bool:
        """Whether every model is being served."""
        return bool(self.entries) and all(e.current is not None for e in self.entries.values())

    def problems(self) -> dict[str, str]:
        """Each model that is not ready, with why."""
        return {
            n: e.reason or e.state.lower() for n, e in self.entries.items() if e.current is None
        }

    def index(self) -> list[dict[str, Any]]:
        """The repository index: every model, its version, state and reason."""
        out: list[dict[str, Any]] = []
        for name, entry in sorted(self.entries.items()):
            item: dict[str, Any] = {"name": name, "state": entry.state, "reason": entry.reason}
            if entry.current is not None:
                item["version"] = entry.current.version
            out.append(item)
        return out

    # ----------------------------------------------------------------------- changes

    def load_all(self) -> None:
        """Load every model and shadow candidate (each failure stays with its model)."""
        for name in list(self.entries):
            self.load(name)
            self.load_shadow(name)

    def shadow_of(self, name: str) -> Shadow | None:
        """The candidate mirroring ``name``, if one is loaded."""
        entry = self.entries.get(name)
        return entry.shadow if entry is not None else None

    def load_shadow(self, name: str) -> None:
        """(Re)load ``name``'s shadow candidate through every check; a failure leaves no
        shadow (and is counted and audited), never touching the served model."""
        entry = self.entries[name]
        if entry.shadow_source is None:
            return
        with self._lock:
            try:
                fresh = load_source(entry.shadow_source, self._backend() if self._backend else None)
            except Exception as exc:  # the candidate's failure never reaches the served model
                message = getattr(exc, "message", None) or first_line(exc)
                self.metrics.failure(f"{name} (shadow)", reason_of(exc))
                entry.shadow_reason = message
                self._event("serve.shadow-refused", name, {"error": message})
                return
            old = entry.shadow
            if old is not None and (old.candidate.version, old.candidate.digest) == (
                fresh.version, fresh.digest):  # fmt: skip
                return
            entry.shadow, entry.shadow_reason = Shadow(name, fresh, self.metrics), ""
            if old is not None:
                old.close()
            self._event("serve.shadow", name, {"version": fresh.version, "digest": fresh.digest})

    def load(self, name: str) -> Entry:
        """(Re)load ``name`` through every check; swap it in only if all of them pass."""
        entry = self.entries.get(name)
        if entry is None:
            raise ModelNotServedError(f"unknown model {name!r}", hint="see /v2/repository/index")
        with self._lock:
            if entry.current is None:
                entry.state = LOADING
            try:
                fresh = load_source(entry.source, self._backend() if self._backend else None)
            except ModelsealError as exc:
                self._refused(entry, exc)
                return entry
            except Exception as exc:  # a framework refusing bytes that verified and scanned
                first = first_line(exc)
                self._refused(entry, ModelsealError(
                    f"{entry.source.label}: the framework cannot load it ({first})",
                    hint="check --framework and the model file",
                ))  # fmt: skip
                return entry
            self._swap(entry, fresh)
        return entry

    def unload(self, name: str) -> None:
        """Stop serving ``name`` (it can be loaded again)."""
        entry = self.entries.get(name)
        if entry is None:
            raise ModelNotServedError(f"unknown model {name!r}", hint="see /v2/repository/index")
        with self._lock:
            old = entry.current
            entry.current, entry.state, entry.reason = None, UNLOADED, "unloaded"
            self.metrics.stopped(name)
            if old is not None:
                self._event("serve.unload", name, {"version": old.version, "digest": old.digest})

    def refresh(self) -> None:
        """Reload every registry model whose reference now names another version (an alias
        moved). Models given by path are re-verified instead (see :meth:`reverify`)."""
        for name, entry in list(self.entries.items()):
            if entry.source.ref is None or entry.state == UNLOADED:
                continue
            try:
                target = self._resolve(entry.source.ref)
            except ModelsealError as exc:
                self._note_failure(entry, exc)
                continue
            current = entry.current
            wanted = (str(target[0]), target[1])
            served = (current.version, current.digest) if current is not None else None
            if wanted != served and wanted != entry.refused:
                self.load(name)
                now = entry.current
                if now is None or (now.version, now.digest) != wanted:
                    entry.refused = wanted  # retried when the reference moves again
            self._refresh_shadow(name, entry)

    def _refresh_shadow(self, name: str, entry: Entry) -> None:
        source = entry.shadow_source
        if source is None or source.ref is None:
            return
        try:
            target = self._resolve(source.ref)
        except ModelsealError as exc:
            entry.shadow_reason = exc.message
            return
        wanted = (str(target[0]), target[1])
        shadow = entry.shadow
        current = (shadow.candidate.version, shadow.candidate.digest) if shadow else None
        if wanted != current and wanted != entry.shadow_refused:
            self.load_shadow(name)
            now = entry.shadow
            if now is None or (now.candidate.version, now.candidate.digest) != wanted:
                entry.shadow_refused = wanted

    def reverify(self) -> None:
        """Check that each served model's source still holds the bytes being served: the file
        against its signature, or the registry's record of the version."""
        for entry in list(self.entries.values()):
            current = entry.current
            if current is None:
                continue
            try:
                if entry.source.ref is not None:
                    from modelseal.registry.models import VersionRef

                    ref = VersionRef.parse(entry.source.ref)
                    number = int(current.version)
                    pinned = f"{ref.model}:{number}"
                    found = self._resolve(pinned)
                    ok = found[1] == current.digest
                else:
                    from modelseal.signing.api import verify

                    assert entry.source.path is not None and entry.source.signature is not None
                    result = verify(
                        entry.source.path,
                        signature=entry.source.signature,
                        public_key=entry.source.public_key,
                        trust_anchors=entry.source.trust_anchors,
                    )
                    ok = result.root_digest == current.digest
                if not ok:
                    raise ModelsealError(
                        f"{entry.source.label} no longer holds the served digest",
                        hint="someone changed the model's source",
                    )
            except ModelsealError as exc:
                self._note_failure(entry, exc)
                self._event("serve.reverify-failed", entry.source.name, {"error": exc.message})

    # ----------------------------------------------------------------------- internals

    def _resolve(self, ref: str) -> tuple[int, str]:
        from modelseal.registry.models import VersionRef
        from modelseal.registry.versions import ResolveVersion

        parsed = VersionRef.parse(ref)
        backend = self._backend() if self._backend else None
        if backend is None:
            raise ModelsealError("no registry to resolve models in", hint="give the registry")
        info = backend.call(
            ResolveVersion(name=parsed.model, version=parsed.number, alias=parsed.alias)
        )
        return int(info.version), str(info.root_digest.sha256)

    def _swap(self, entry: Entry, fresh: Loaded) -> None:
        old = entry.current
        entry.current = fresh  # one assignment: requests see the old or the new model
        entry.state, entry.reason = READY, ""
        self.metrics.serving(fresh.name, fresh.version, fresh.digest)
        details = {"version": fresh.version, "digest": fresh.digest, "signer": fresh.signer}
        if old is None:
            self._event("serve.load", fresh.name, details)
        elif (old.version, old.digest) != (fresh.version, fresh.digest):
            self.metrics.swaps.labels(fresh.name).inc()
            self._event("serve.swap", fresh.name, {**details, "from": old.version})

    def _refused(self, entry: Entry, exc: ModelsealError) -> None:
        self._note_failure(entry, exc)
        if entry.current is None:
            entry.state = FAILED
        self._event("serve.refused", entry.source.name, {"error": exc.message, "code": exc.code})

    def _note_failure(self, entry: Entry, exc: ModelsealError) -> None:
        self.metrics.failure(entry.source.name, reason_of(exc))
        keeping = " (still serving the previous version)" if entry.current is not None else ""
        entry.reason = exc.message + keeping

    def _event(self, event: str, model: str, details: dict[str, Any]) -> None:
        if self._record is not None:
            self._record(event, model, details)
