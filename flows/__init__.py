"""Prefect flows and tasks: thin wrappers over `curation/` and `dvmset/` (the only package that imports prefect)."""
