"""SQL storage: the decision log is the source of truth (schema, engine set-up, group-commit writer)."""
