"""Markdown building blocks of the dataset card and the release notes (pure).

In: a header and rows of cells, or a text and its language. Out: a Markdown table with `|` escaped in
its cells (`markdown_table`); a fenced code block whose fence outlasts any backticks inside (`fenced`).
"""

from __future__ import annotations

import re


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(str(cell).replace("|", "\\|") for cell in line) + " |" for line in lines)


def fenced(text: str, language: str) -> str:
    """`text` in a fenced block whose fence is longer than any run of backticks inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    body = text.rstrip("\n")
    return f"{fence}{language}\n{body}\n{fence}"
