"""The column dictionary of a dataset card, generated from the manifest schema.

In: an Arrow schema (`MANIFEST_SCHEMA`) and a description per column (`COLUMN_DOCS`). Out: a Markdown
table with one row per column: name, Arrow type, nullable, description (`column_dictionary`, pure).
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from manifests.markdown import markdown_table
from manifests.schema import COLUMN_DOCS, MANIFEST_SCHEMA


def column_dictionary(schema: pa.Schema = MANIFEST_SCHEMA, docs: Mapping[str, str] = COLUMN_DOCS) -> str:
    """A Markdown table of every column of `schema`: name, Arrow type, nullable, description."""
    rows = [
        [
            f"`{field.name}`",
            f"`{_type_name(field.type)}`",
            "yes" if field.nullable else "no",
            docs.get(field.name, "(no description)"),
        ]
        for field in schema
    ]
    return markdown_table(["column", "type", "nullable", "description"], rows)


def _type_name(type_: pa.DataType) -> str:
    """`list<string>` for a list of non-null strings (Arrow's own text names the item field)."""
    if pa.types.is_list(type_):
        return f"list<{_type_name(type_.value_type)}>"
    return str(type_)
