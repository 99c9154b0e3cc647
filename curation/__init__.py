"""Curation stages, one module per stage: plain functions over files and frozen records."""
