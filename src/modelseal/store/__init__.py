"""The database under the registry, the audit log and access control: engines, the schema (one
set of tables) and its migrations. No domain logic lives here."""
