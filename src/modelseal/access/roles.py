"""Roles, the permissions they carry, and the authorization decision (default deny).

Model permissions apply to the models a grant's scope (a glob on model names, ``*`` for all)
matches; global permissions (audit, access administration, garbage collection) need a grant
scoped to ``*``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from fnmatch import fnmatchcase

from modelseal.errors import UsageError

# Model permissions.
READ = "model.read"
PUSH = "model.push"
DOWNLOAD = "model.download"
ALIAS_STAGING = "alias.staging"
ALIAS_PRODUCTION = "alias.production"
ALIAS_OTHER = "alias.other"
DELETE = "version.delete"
# Store a gate decision with a version (it must verify with a trusted gate key, so this
# permission adds evidence but cannot forge it).
ATTEST = "attestation.attach"
# Ask a served model for predictions (modelseal serve).
INFER = "model.infer"
# Global permissions.
AUDIT_READ = "audit.read"
AUDIT_EXPORT = "audit.export"
ACCESS_ADMIN = "access.admin"
TRUST = "trust.manage"
GC = "registry.gc"

MODEL_PERMISSIONS = frozenset(
    {READ, PUSH, DOWNLOAD, ALIAS_STAGING, ALIAS_PRODUCTION, ALIAS_OTHER, DELETE, ATTEST, INFER}
)
GLOBAL_PERMISSIONS = frozenset({AUDIT_READ, AUDIT_EXPORT, ACCESS_ADMIN, TRUST, GC})

ROLES: dict[str, frozenset[str]] = {
    # Register and upload versions of their (scoped) models, and read them.
    # Attach the gate's decisions to them; ask the served ones for predictions.
    "data-scientist": frozenset({READ, PUSH, ATTEST, INFER}),
    # Read, download, move `staging` and other non-production aliases; attach gate decisions;
    # ask served models for predictions.
    "ml-engineer": frozenset({READ, DOWNLOAD, ALIAS_STAGING, ALIAS_OTHER, ATTEST, INFER}),
    # Move `production` and the other protected aliases (a deployment needs the bytes: read
    # and download too); attach gate decisions; ask served models for predictions.
    "devops": frozenset({READ, DOWNLOAD, ALIAS_PRODUCTION, ATTEST, INFER}),
    # Keys, trust, revocation (tombstoning versions), scan; read the registry and the audit.
    "security-engineer": frozenset({READ, DELETE, TRUST, AUDIT_READ}),
    # Read-only registry and audit, and export.
    "compliance-officer": frozenset({READ, AUDIT_READ, AUDIT_EXPORT}),
    # Users, tokens and roles; registry maintenance.
    "admin": frozenset({ACCESS_ADMIN, GC}),
    # An application that only asks served models (in its grant's scope) for predictions.
    "inference-client": frozenset({INFER}),
}

PROTECTED_ALIASES = {"staging": ALIAS_STAGING, "production": ALIAS_PRODUCTION}


def alias_permission(alias: str, protected: Collection[str] = ()) -> str:
    """The permission that moving ``alias`` needs: staging, production (also for every alias
    the registry protects with the gate), other."""
    if alias in protected:
        return ALIAS_PRODUCTION
    return PROTECTED_ALIASES.get(alias, ALIAS_OTHER)


def check_role(role: str) -> str:
    """``role`` if it is a known role, else :class:`UsageError` naming the roles."""
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r}", hint=f"use one of: {', '.join(ROLES)}")
    return role


@dataclasses.dataclass(frozen=True)
class Grant:
    """A role held on the models a scope (a glob on model names) matches."""

    role: str
    scope: str = "*"

    def __str__(self) -> str:
        return self.role if self.scope == "*" else f"{self.role}[{self.scope}]"


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who is acting. ``superuser`` is the single local user of the embedded store."""

    name: str
    grants: tuple[Grant, ...] = ()
    superuser: bool = False
    request_id: str = ""
    source: str = ""

    @property
    def roles(self) -> tuple[str, ...]:
        """The principal's grants as text (``local-admin`` for the local superuser)."""
        if self.superuser:
            return ("local-admin",)
        return tuple(sorted({str(g) for g in self.grants}))

    def with_request(self, request_id: str, source: str) -> Principal:
        """The same principal, for one request from ``source``."""
        return dataclasses.replace(self, request_id=request_id, source=source)


@dataclasses.dataclass(frozen=True)
class Decision:
    """Whether something is allowed, and why (recorded in the audit trail)."""

    allowed: bool
    reason: str


def decide(principal: Principal, permission: str, model: str | None = None) -> Decision:
    """Whether ``principal`` holds ``permission`` (on ``model`` for model permissions)."""
    if principal.superuser:
        return Decision(True, "local administrator")
    for grant in principal.grants:
        if permission not in ROLES.get(grant.role, frozenset()):
            continue
        if permission in GLOBAL_PERMISSIONS or model is None:
            if grant.scope == "*":
                return Decision(True, f"role {grant}")
            continue
        if fnmatchcase(model, grant.scope):
            return Decision(True, f"role {grant}")
    where = f" on model {model!r}" if model is not None and permission in MODEL_PERMISSIONS else ""
    return Decision(False, f"permission {permission} missing{where}")


def may_read(principal: Principal, model: str) -> bool:
    """Whether ``principal`` may read model ``model``."""
    return decide(principal, READ, model).allowed
