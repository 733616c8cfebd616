"""Reading an upload into lines of text, or a clear reason why not.

Checked before anything is created: size, emptiness, binary content, encoding (UTF-8,
with or without BOM), and for CSV the chosen column. The error messages are shown to
the user as they are.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass


class UploadError(ValueError):
    """The upload cannot be analysed; the message says why, for the user."""


@dataclass(frozen=True)
class Parsed:
    lines: list[str]
    kind: str  # "txt" or "csv"
    column: str | None = None


def parse_upload(
    name: str, data: bytes, column: str = "", max_bytes: int = 5_000_000, max_lines: int = 20_000
) -> Parsed:
    """Lines to analyse from a .txt (one text per line) or .csv (one column) upload."""
    kind = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if kind not in ("txt", "csv"):
        raise UploadError(f"{name!r} is not a .txt or .csv file.")
    if len(data) > max_bytes:
        raise UploadError(
            f"{name!r} is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB."
        )
    text = _decode(name, data)
    lines = _csv_lines(name, text, column) if kind == "csv" else _txt_lines(text)
    lines = [line for line in (" ".join(line.split()) for line in lines) if line]
    if not lines:
        raise UploadError(f"{name!r} contains no text to analyse.")
    if len(lines) > max_lines:
        raise UploadError(f"{name!r} has {len(lines):,} lines; the limit is {max_lines:,}.")
    return Parsed(lines, kind, column.strip() or None if kind == "csv" else None)


def _decode(name: str, data: bytes) -> str:
    if not data.strip():
        raise UploadError(f"{name!r} is empty.")
    if b"\x00" in data[:8192]:
        raise UploadError(f"{name!r} looks like a binary file, not text.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UploadError(
            f"{name!r} is not UTF-8 text (byte {exc.start} cannot be decoded): "
            f"save it as UTF-8 and upload it again."
        ) from None


def _txt_lines(text: str) -> list[str]:
    return text.splitlines()


def _csv_lines(name: str, text: str, column: str) -> list[str]:
    column = column.strip()
    if not column:
        raise UploadError("Name the CSV column that holds the text.")
    try:
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames or []
        if column not in header:
            found = ", ".join(repr(h) for h in header) or "none"
            raise UploadError(f"{name!r} has no column {column!r} (columns: {found}).")
        return [row.get(column) or "" for row in reader]
    except csv.Error as exc:
        raise UploadError(f"{name!r} is not a readable CSV file: {exc}.") from None


def csv_columns(data: bytes) -> list[str]:
    """The header of a CSV upload (for the column picker), or [] if unreadable."""
    try:
        first = data.decode("utf-8-sig").splitlines()[0]
        return next(csv.reader([first]))
    except (UnicodeDecodeError, IndexError, csv.Error, StopIteration):
        return []
