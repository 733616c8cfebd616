"""Named SQL blocks loaded from ``sql/queries/*.sql``, composed for a schema.

Each block starts with ``-- name: <name>`` and a one-line purpose. ``{schema}`` in the
text is replaced by the schema as a quoted identifier (``psycopg.sql.Identifier``), so
the schema name is never spliced in as raw text. ``{block:<name>}`` is replaced by another
block's text (a part two statements share). Everything else is a bound parameter.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from psycopg import sql

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@functools.cache
def _blocks() -> dict[str, str]:
    blocks: dict[str, str] = {}
    folder = resources.files("celeriac.db").joinpath("sql/queries")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            blocks.update(parse_blocks(entry.read_text(encoding="utf-8")))
    return blocks


def parse_blocks(text: str) -> dict[str, str]:
    """Split a .sql file into its named blocks."""
    parts = _NAME.split(text)
    return {
        name: _strip_comments(body) for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def _strip_comments(body: str) -> str:
    # Whole-line comments go: psycopg would read a %(name)s in a comment as a parameter.
    # Indentation goes too: psycopg caches its parsing of queries up to 4,096 bytes only.
    lines = [line.strip() for line in body.splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(lines).strip().rstrip(";")


def with_schema(text: str, schema: str) -> sql.Composed:
    """Compose SQL text, replacing ``{schema}`` with the quoted identifier."""
    pieces = text.split("{schema}")
    composed: list[sql.Composable] = [sql.SQL(pieces[0])]
    for piece in pieces[1:]:
        composed += [sql.Identifier(schema), sql.SQL(piece)]
    return sql.Composed(composed)


_INCLUDE = re.compile(r"\{block:(\w+)\}")


def _block(name: str) -> str:
    try:
        text = _blocks()[name]
    except KeyError:
        raise KeyError(f"no SQL block named {name!r}") from None
    # {block:name}: the text of another block, for parts two statements share
    return _INCLUDE.sub(lambda match: _block(match.group(1)), text)


def names() -> list[str]:
    """The names of all blocks (statements and the parts they share)."""
    return sorted(_blocks())


@functools.cache
def query(name: str, schema: str) -> bytes:
    """The named query for ``schema``, composed once and cached as bytes."""
    return with_schema(_block(name), schema).as_bytes(None)


__all__ = ["names", "parse_blocks", "query", "with_schema"]
