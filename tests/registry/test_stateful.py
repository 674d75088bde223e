"""Model-based test: random sequences of pushes, alias moves, rollbacks and tombstones keep the
registry consistent with a simple model and with its own audit trail, which always verifies."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from modelseal.audit.verify import verify_log
from modelseal.errors import ConflictError, NotFoundError
from modelseal.registry.attestations import AttachAttestation
from modelseal.registry.receive import UploadFile
from modelseal.registry.replay import check_live_state
from modelseal.registry.trusted_keys import AddTrustedKey
from modelseal.registry.uploads import BeginUpload, PublishUpload
from modelseal.registry.versions import DeleteVersion, ListVersions, ResolveVersion, SetAlias
from modelseal.store import db
from tests.policy import fixtures as gate_fixtures
from tests.registry.fixtures import make_signed_model, open_env

ALIASES = ("staging", "production", "canary")
KEYS: tuple[Path, Path] | None = None


def _keys() -> tuple[Path, Path]:
    global KEYS
    if KEYS is None:
        from modelseal.signing.keys import generate_key, write_key_pair

        d = Path(tempfile.mkdtemp(prefix="ms-stateful-keys-"))
        write_key_pair(generate_key("ed25519"), d / "k.pem", d / "k.pub", passphrase=None)
        KEYS = (d / "k.pem", d / "k.pub")
    return KEYS


class RegistryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="ms-stateful-"))
        self.env = open_env(self.tmp / "home", f"sqlite:///{self.tmp / 'r.db'}")
        self.model = make_signed_model(self.tmp, _keys())
        # Every version gets the gate's passing decision, so production moves like any alias.
        private, public = gate_fixtures.gate_key(self.tmp / "gate")
        self.env.registry.run(self.env.admin, AddTrustedKey(pem=public.read_text(), name="gate",
                                                            purpose="gate"))  # fmt: skip
        sm = self.model
        self.evidence = gate_fixtures.bundle(
            gate_fixtures.decide(sm.path, sm.signature, sm.public_key), private
        )
        self.versions: dict[int, bool] = {}  # number -> live
        self.aliases: dict[str, int] = {}

    def teardown(self) -> None:
        self.env.registry.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @rule()
    def push(self) -> None:
        reg, admin, sm = self.env.registry, self.env.admin, self.model
        up = reg.run(admin, BeginUpload(name="m", bundle=sm.signature.read_text(),
                                        public_key=sm.public_key.read_text()))  # fmt: skip
        for path in up.files:
            reg.receive(admin, UploadFile(upload_id=up.upload_id, path=path),
                        [(sm.path / path).read_bytes()])  # fmt: skip
        info = reg.run(admin, PublishUpload(upload_id=up.upload_id))
        assert info.version == len(self.versions) + 1
        reg.run(admin, AttachAttestation(name="m", number=info.version, bundle=self.evidence))
        self.versions[info.version] = True

    @rule(alias=st.sampled_from(ALIASES), pick=st.integers(0, 20))
    def move(self, alias: str, pick: int) -> None:
        number = pick % (len(self.versions) + 1) + 1 if self.versions else 1
        reg, admin = self.env.registry, self.env.admin
        if number not in self.versions:
            expected: type[Exception] = NotFoundError
        elif not self.versions[number]:
            expected = ConflictError
        else:
            reg.run(admin, SetAlias(name="m", alias=alias, version=number))
            self.aliases[alias] = number
            return
        try:
            reg.run(admin, SetAlias(name="m", alias=alias, version=number))
        except expected:
            return
        raise AssertionError(f"moving {alias} to {number} should fail")

    @rule(pick=st.integers(0, 20))
    def delete(self, pick: int) -> None:
        live = [n for n, ok in self.versions.items() if ok]
        if not live:
            return
        number = live[pick % len(live)]
        self.env.registry.run(self.env.admin, DeleteVersion(name="m", number=number,
                                                            reason="test"))  # fmt: skip
        self.versions[number] = False
        self.aliases = {a: n for a, n in self.aliases.items() if n != number}

    @invariant()
    def consistent(self) -> None:
        reg, admin = self.env.registry, self.env.admin
        if not self.versions:
            return
        every = reg.run(admin, ListVersions(name="m", include_deleted=True))
        found = {v.version: not v.deleted for v in every}
        assert found == self.versions
        for alias in ALIASES:
            if alias in self.aliases:
                got = reg.run(admin, ResolveVersion(name="m", alias=alias)).version
                assert got == self.aliases[alias]
        with db.reading(self.env.engine()) as conn:
            verify_log(conn, reg.audit.signer.verifier).raise_for_findings()
            assert check_live_state(conn) == []  # the tables say what the log says
            moves = [r for r in reg.audit.records(conn) if r.action == "alias.move"]
        last = {r.details["alias"]: r.details["to"] for r in moves}
        for alias, number in self.aliases.items():
            assert last[alias] == number


RegistryMachine.TestCase.settings = settings(max_examples=8, stateful_step_count=12,
                                             deadline=None)  # fmt: skip
TestRegistryMachine = RegistryMachine.TestCase
