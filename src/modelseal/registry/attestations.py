"""Signed gate decisions stored with versions, and the rule that protected aliases need one.

An attestation bundle (see :mod:`modelseal.policy.evidence`) is accepted only if it verifies
now: signed by a gate key the registry trusts, about this version's exact manifest digest. A
protected alias (``production`` by default) moves only to a version holding a *passing*
decision that still verifies with the currently trusted gate keys, made under the configured
policy digest (if one is set). Fail closed: while the registry trusts no gate key, nothing
can satisfy the rule, so protected aliases do not move (configure ``protected_aliases`` to an
empty list to run a registry without the gate).
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, insert, select

from modelseal.access import roles
from modelseal.audit.record import utc_now
from modelseal.errors import InputError, ModelsealError, PermissionDeniedError
from modelseal.operation import Operation, Route
from modelseal.registry import reads
from modelseal.registry.core import RegistrySession
from modelseal.registry.models import VersionInfo
from modelseal.registry.views import ModelName, VersionNumber
from modelseal.store.schema import attestations

DECISION = "gate-decision"


class AttestationView(BaseModel):
    """An attestation bundle stored with a version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    model: str
    version: int
    kind: str
    result: str
    policy_digest: str
    keyid: str
    bundle_sha256: str
    created_at: str
    created_by: str
    bundle: str | None = Field(None, description="The JSON-lines bundle (when listed with it).")


class AttachAttestation(Operation[AttestationView]):
    """Store a gate decision's attestation bundle with a version (it must verify now)."""

    route: ClassVar[Route] = Route(
        "POST",
        "/v1/models/{name}/versions/{number}/attestations",
        tag="models",
        errors=(403, 404, 422),
        max_body=16 << 20,
    )
    name: ModelName
    number: VersionNumber
    bundle: str = Field(max_length=16 << 20, description="JSON lines of DSSE envelopes.")

    def run(self, session: RegistrySession) -> AttestationView:
        """Verify the bundle against the version and the trusted gate keys, then store it."""
        from modelseal.signing import intoto as evidence

        resource = f"model/{self.name}/versions/{self.number}"
        decision = session.require(roles.ATTEST, "attestation.attach", resource, self.name)
        keys = session.gate_keys()
        if not keys:
            raise InputError(
                "this registry trusts no gate key, so it cannot check a gate decision",
                hint="ask a security engineer to trust the gate's public key",
                topic="gate-keys",
            )
        with session.reading() as conn:
            info = reads.version(conn, self.name, reads.model_id(conn, self.name), self.number)
        try:
            verified = evidence.verify(evidence.loads(self.bundle), keys, digest=info.root_digest)
        except ModelsealError as exc:
            session.deny("attestation.attach", resource, exc)
        result = "PASSED" if verified.passed else "FAILED"
        digest = hashlib.sha256(self.bundle.encode("utf-8")).hexdigest()
        with session.transaction() as conn:
            mid = reads.model_id(conn, self.name, lock=True)
            target = reads.version(conn, self.name, mid, self.number)
            version_id = _version_id(conn, mid, self.number)
            stored = conn.execute(
                select(attestations).where(attestations.c.version_id == version_id,
                                           attestations.c.bundle_sha256 == digest)
            ).mappings().first()  # fmt: skip
            if stored is not None:  # the same evidence again: stored once
                return _view(self.name, self.number, dict(stored), with_bundle=False)
            row = {
                "version_id": version_id,
                "kind": DECISION,
                "bundle": self.bundle,
                "bundle_sha256": digest,
                "result": result,
                "policy_digest": verified.policy_digest,
                "keyid": verified.keyid,
                "created_at": utc_now(),
                "created_by": session.actor.name,
            }
            new_id = conn.execute(
                insert(attestations).values(**row).returning(attestations.c.id)
            ).scalar_one()
            session.record(conn, "attestation.attach", resource, decision,
                           digest=f"sha256:{target.root_digest}",
                           details={"result": result, "policy": verified.policy_digest,
                                    "bundle": row["bundle_sha256"]})  # fmt: skip
        return _view(self.name, self.number, {**row, "id": new_id}, with_bundle=False)


class ListAttestations(Operation[list[AttestationView]]):
    """The attestations stored with a version, newest last, with their bundles."""

    route: ClassVar[Route] = Route(
        "GET", "/v1/models/{name}/versions/{number}/attestations", tag="models", errors=(403, 404)
    )
    name: ModelName
    number: VersionNumber

    def run(self, session: RegistrySession) -> list[AttestationView]:
        """The attestations."""
        session.require(roles.READ, "model.read", f"model/{self.name}", self.name)
        with session.reading() as conn:
            mid = reads.model_id(conn, self.name)
            reads.version(conn, self.name, mid, self.number)
            rows = conn.execute(
                select(attestations)
                .where(attestations.c.version_id == _version_id(conn, mid, self.number))
                .order_by(attestations.c.id)
            ).mappings()
            return [_view(self.name, self.number, dict(r), with_bundle=True) for r in rows]


def require_decision(
    session: RegistrySession, target: VersionInfo, alias: str, resource: str
) -> None:
    """Refuse (audited, 403) moving protected ``alias`` to ``target`` without a passing gate
    decision for its exact digest that verifies with today's gate keys and policy."""
    registry = session.registry
    if alias not in registry.protected_aliases:
        return
    keys = session.gate_keys()
    if not keys:
        error = PermissionDeniedError(
            f"{alias} is protected and this registry trusts no gate key, so no gate decision "
            f"can allow {target.model}:{target.number} there",
            hint="trust the gate's public key (registry trust add --purpose gate)",
            topic="gate-keys",
        )
        session.deny("alias.move", resource, error, details={"alias": alias, "to": target.number})
    from modelseal.signing import intoto as evidence

    with session.reading() as conn:
        mid = reads.model_id(conn, target.model)
        rows = conn.execute(
            select(attestations.c.bundle, attestations.c.result)
            .where(attestations.c.version_id == _version_id(conn, mid, target.number))
            .order_by(attestations.c.id.desc())
        ).all()
    problems: list[str] = []
    for bundle, _stored_result in rows:
        try:
            verified = evidence.verify(evidence.loads(bundle), keys, digest=target.root_digest)
        except ModelsealError as exc:
            problems.append(f"a stored decision no longer verifies ({exc.message})")
            continue
        wanted = registry.gate_policy_digest
        if wanted is not None and verified.policy_digest != wanted:
            problems.append(f"a decision was made under policy sha256:{verified.policy_digest[:12]}"
                            f"..., not the required sha256:{wanted[:12]}...")  # fmt: skip
            continue
        if not verified.passed:
            failed = verified.failed_checks()
            problems.append("the gate decision FAILED: " + "; ".join(failed[:3]))
            continue
        return
    if not rows:
        problems.append("no gate decision is stored for this digest")
    error = PermissionDeniedError(
        f"{alias} is protected: {target.model}:{target.number} "
        f"(sha256:{target.root_digest[:12]}...) needs a passing gate decision: "
        + "; ".join(problems[:3]),
        hint="gate the model and attach its signed decision before promoting it",
        topic=f"gate:{target.model}:{target.number}",
    )
    session.deny("alias.move", resource, error, details={"alias": alias, "to": target.number})


def _version_id(conn: Connection, mid: int, number: int) -> int:
    from modelseal.store.schema import versions

    found = conn.execute(
        select(versions.c.id).where(versions.c.model_id == mid, versions.c.number == number)
    ).scalar_one()
    return int(found)


def _view(name: str, number: int, row: dict[str, object], *, with_bundle: bool) -> AttestationView:
    return AttestationView(
        id=int(str(row["id"])),
        model=name,
        version=number,
        kind=str(row["kind"]),
        result=str(row["result"]),
        policy_digest=str(row["policy_digest"]),
        keyid=str(row["keyid"]),
        bundle_sha256=str(row["bundle_sha256"]),
        created_at=str(row["created_at"]),
        created_by=str(row["created_by"]),
        bundle=str(row["bundle"]) if with_bundle else None,
    )
