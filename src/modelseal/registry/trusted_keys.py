"""Signer keys the registry trusts for pushes (security engineers). Once any key is trusted,
only trusted keys may sign what is pushed."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from sqlalchemy import delete, insert, select

from modelseal.access import roles
from modelseal.audit.record import utc_now
from modelseal.errors import ConflictError, InputError, NotFoundError
from modelseal.operation import Operation, Route
from modelseal.registry.core import RegistrySession
from modelseal.registry.views import KeyStatus, TrustedKey
from modelseal.store.schema import trusted_keys


class AddTrustedKey(Operation[TrustedKey]):
    """Trust a signer's public key for pushes."""

    route: ClassVar[Route] = Route("POST", "/v1/trust/keys", tag="trust", errors=(403, 409))
    pem: str = Field(max_length=20000, description="The PEM public key.")
    name: str = Field(min_length=1, max_length=200, description="Whose key this is.")
    purpose: Literal["signer", "gate"] = Field(
        "signer", description="signer: may sign pushed models; gate: may sign gate decisions."
    )

    def run(self, session: RegistrySession) -> TrustedKey:
        """The key's id (the first 16 hex digits of its hint) and name."""
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        from modelseal.signing.keys import check_supported, key_hint, public_pem

        try:
            key = check_supported(load_pem_public_key(self.pem.encode("utf-8")))
        except (ValueError, UnsupportedAlgorithm):
            raise InputError(
                "not a PEM public key", hint="give the signer's public key (.pub)"
            ) from None
        name = self.name
        if any(ord(c) < 0x20 for c in name):
            raise InputError(f"invalid name {name!r}", hint="a short printable label")
        hint = key_hint(key)
        key_id = hint[:16]
        resource = f"trust/keys/{key_id}"
        decision = session.require(roles.TRUST, "trust.add", resource)
        with session.transaction() as conn:
            if conn.execute(select(trusted_keys.c.id).where(trusted_keys.c.id == key_id)).first():
                raise ConflictError(f"key {key_id} is already trusted", hint="nothing to do")
            conn.execute(
                insert(trusted_keys).values(
                    id=key_id, name=name, pem=public_pem(key).decode("ascii"),
                    added_at=utc_now(), added_by=session.actor.name, purpose=self.purpose,
                )
            )  # fmt: skip
            session.record(conn, "trust.add", resource, decision, digest=f"sha256:{hint}",
                           details={"name": name, "purpose": self.purpose})  # fmt: skip
        return TrustedKey(id=key_id, name=name, purpose=self.purpose)


class RemoveTrustedKey(Operation[KeyStatus]):
    """Stop trusting a signer key."""

    route: ClassVar[Route] = Route(
        "POST", "/v1/trust/keys/{key_id}/remove", tag="trust", errors=(403, 404)
    )
    key_id: str = Field(max_length=64)

    def run(self, session: RegistrySession) -> KeyStatus:
        """Remove the key, audited."""
        resource = f"trust/keys/{self.key_id}"
        decision = session.require(roles.TRUST, "trust.remove", resource)
        with session.transaction() as conn:
            gone = conn.execute(
                delete(trusted_keys).where(trusted_keys.c.id == self.key_id)
            ).rowcount
            if not gone:
                raise NotFoundError(
                    f"no trusted key {self.key_id!r}",
                    hint="list the trusted keys",
                    topic="trusted-keys",
                )
            session.record(conn, "trust.remove", resource, decision)
        return KeyStatus(id=self.key_id, status="removed")


class ListTrustedKeys(Operation[list[TrustedKey]]):
    """The signer keys the registry trusts."""

    route: ClassVar[Route] = Route("GET", "/v1/trust/keys", tag="trust", errors=(403,))

    def run(self, session: RegistrySession) -> list[TrustedKey]:
        """The keys, sorted by id."""
        session.require(roles.TRUST, "trust.list", "trust/keys")
        with session.reading() as conn:
            rows = conn.execute(select(trusted_keys).order_by(trusted_keys.c.id)).mappings()
            return [
                TrustedKey(
                    id=r["id"],
                    name=r["name"],
                    added_at=r["added_at"],
                    added_by=r["added_by"],
                    purpose=r["purpose"],
                )
                for r in rows
            ]
