"""The registry's tables (SQLAlchemy Core). Times are ISO-8601 UTC strings (``...Z``, fixed width)
so they compare as text and hash identically on every database."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData()

TIME = String(32)
NAME = String(200)
DIGEST = String(64)

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", NAME, nullable=False, unique=True),
    Column("created_at", TIME, nullable=False),
    Column("created_by", NAME, nullable=False),
    Column("last_version", Integer, nullable=False, default=0),
)

versions = Table(
    "versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("root_digest", DIGEST, nullable=False),
    Column("manifest", Text, nullable=False),
    Column("bundle", Text, nullable=False),
    Column("signer", Text, nullable=False),
    Column("public_key", Text, nullable=True),
    Column("meta", Text, nullable=False),
    Column("lineage", Text, nullable=False),
    Column("created_at", TIME, nullable=False),
    Column("created_by", NAME, nullable=False),
    Column("deleted_at", TIME, nullable=True),
    Column("deleted_by", NAME, nullable=True),
    Column("delete_reason", Text, nullable=True),
    # What scanning the pushed files found (clean, unsafe, unscannable; client-clean for an
    # encrypted push the client scanned), the report, and whether the version is quarantined.
    Column("scan_status", String(16), nullable=True),
    Column("scan_report", Text, nullable=True),
    Column("quarantined_at", TIME, nullable=True),
    UniqueConstraint("model_id", "number", name="uq_versions_model_number"),
)

version_files = Table(
    "version_files",
    metadata,
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=False),
    Column("path", Text, nullable=False),
    Column("blob", DIGEST, nullable=False, index=True),
    Column("size", BigInteger, nullable=False),
    # Encrypted versions: ``blob`` is the plaintext SHA-256 (the file's identity), ``stored`` the
    # SHA-256 of the ciphertext object in the blob store and ``stored_size`` its length.
    Column("stored", DIGEST, nullable=True, index=True),
    Column("stored_size", BigInteger, nullable=True),
    PrimaryKeyConstraint("version_id", "path"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("model_id", Integer, ForeignKey("models.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", TIME, nullable=False),
    Column("updated_by", NAME, nullable=False),
    PrimaryKeyConstraint("model_id", "name"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("model_name", NAME, nullable=False),
    Column("actor", NAME, nullable=False),
    Column("created_at", TIME, nullable=False),
    Column("bundle", Text, nullable=False),
    Column("public_key", Text, nullable=True),
    Column("signer", Text, nullable=False),
    Column("meta", Text, nullable=False),
    Column("lineage", Text, nullable=False),
    Column("encrypted", Boolean, nullable=False, server_default=false()),
)

upload_files = Table(
    "upload_files",
    metadata,
    Column("upload_id", String(64), ForeignKey("uploads.id"), nullable=False),
    Column("path", Text, nullable=False),
    Column("blob", DIGEST, nullable=False, index=True),
    Column("size", BigInteger, nullable=False),
    Column("stored", DIGEST, nullable=True, index=True),
    Column("stored_size", BigInteger, nullable=True),
    PrimaryKeyConstraint("upload_id", "path"),
)

principals = Table(
    "principals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", NAME, nullable=False, unique=True),
    Column("created_at", TIME, nullable=False),
    Column("created_by", NAME, nullable=False),
    Column("disabled_at", TIME, nullable=True),
)

grants = Table(
    "grants",
    metadata,
    Column("principal_id", Integer, ForeignKey("principals.id"), nullable=False),
    Column("role", String(32), nullable=False),
    Column("scope", NAME, nullable=False),
    Column("granted_at", TIME, nullable=False),
    Column("granted_by", NAME, nullable=False),
    PrimaryKeyConstraint("principal_id", "role", "scope"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("principal_id", Integer, ForeignKey("principals.id"), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", TIME, nullable=False),
    Column("expires_at", TIME, nullable=True),
    Column("revoked_at", TIME, nullable=True),
)

audit_records = Table(
    "audit_records",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time", TIME, nullable=False),
    Column("actor", NAME, nullable=False),
    Column("roles", Text, nullable=False),
    Column("action", String(64), nullable=False),
    Column("resource", Text, nullable=False),
    Column("digest", Text, nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("source", String(128), nullable=False),
    Column("details", Text, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("signature", Text, nullable=False),
)

audit_nodes = Table(
    "audit_nodes",
    metadata,
    Column("level", SmallInteger, nullable=False),
    Column("idx", BigInteger, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    PrimaryKeyConstraint("level", "idx"),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    Column("peaks", LargeBinary, nullable=False),
)

trusted_keys = Table(
    "trusted_keys",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("name", NAME, nullable=False),
    Column("pem", Text, nullable=False),
    Column("added_at", TIME, nullable=False),
    Column("added_by", NAME, nullable=False),
    # "signer": may sign pushed models; "gate": may sign gate decisions.
    Column("purpose", String(16), nullable=False, server_default="signer"),
)

# Signed evidence stored with a version (today: gate decisions, as in-toto attestation bundles).
attestations = Table(
    "attestations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("bundle", Text, nullable=False),
    Column("bundle_sha256", DIGEST, nullable=False),
    Column("result", String(16), nullable=False),
    Column("policy_digest", DIGEST, nullable=False),
    Column("keyid", DIGEST, nullable=False),
    Column("created_at", TIME, nullable=False),
    Column("created_by", NAME, nullable=False),
)

# The wrapped data key of an encrypted version (envelope/v1 fields). The key-encryption key is
# never here: only a provider (local file, PKCS#11 token, AWS KMS) the client opens can unwrap.
version_keys = Table(
    "version_keys",
    metadata,
    Column("version_id", Integer, ForeignKey("versions.id"), primary_key=True,
           autoincrement=False),
    Column("provider", String(32), nullable=False),
    Column("kek_id", String(512), nullable=False, index=True),
    Column("wrapped", Text, nullable=False),
    Column("ad_sha256", DIGEST, nullable=False),
    Column("created_at", TIME, nullable=False),
    Column("rotated_at", TIME, nullable=True),
)  # fmt: skip
