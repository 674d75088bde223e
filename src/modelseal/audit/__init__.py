"""The tamper-evident audit trail: an RFC 6962 Merkle log of audit records with signed
checkpoints in the C2SP signed-note format, inclusion and consistency proofs, and verification
that detects any record modified, deleted, inserted or reordered, and truncation or rollback."""
