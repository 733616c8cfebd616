"""Reading uploads: every bad upload gets a message a user can act on."""

from __future__ import annotations

import pytest

from analysis.uploads import UploadError, csv_columns, parse_upload


def test_txt_one_text_per_line_blank_lines_dropped() -> None:
    parsed = parse_upload("a.txt", "\ufeffgood  phone\n\n  bad\tbox \r\n".encode())
    assert parsed.lines == ["good phone", "bad box"]
    assert parsed.kind == "txt"


def test_csv_picks_the_column() -> None:
    data = b'id,review\n1,"Great, really"\n2,Awful\n3,\n'
    parsed = parse_upload("r.csv", data, "review")
    assert parsed.lines == ["Great, really", "Awful"]
    assert parsed.column == "review"
    assert csv_columns(data) == ["id", "review"]


@pytest.mark.parametrize(
    ("name", "data", "column", "message"),
    [
        ("e.txt", b"", "", "is empty"),
        ("e.txt", b"  \n\n", "", "is empty"),
        ("b.txt", b"PK\x03\x04\x00\x00binary", "", "binary"),
        ("l.txt", "caf\xe9 cr\xe8me".encode("latin-1"), "", "not UTF-8"),
        ("r.csv", b"id,review\n1,x\n", "text", "has no column 'text' (columns: 'id', 'review')"),
        ("r.csv", b"id,review\n1,x\n", "", "Name the CSV column"),
        ("r.csv", b"id,review\n1,\n", "review", "contains no text"),
        ("x.pdf", b"%PDF-1.4", "", "not a .txt or .csv"),
    ],
)
def test_bad_uploads_have_clear_messages(name: str, data: bytes, column: str, message: str) -> None:
    with pytest.raises(UploadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_upload(name, data, column)


def test_limits() -> None:
    with pytest.raises(UploadError, match=r"limit is 0\.0 MB"):
        parse_upload("big.txt", b"x" * 2000, max_bytes=1000)
    with pytest.raises(UploadError, match="has 3 lines; the limit is 2"):
        parse_upload("long.txt", b"a\nb\nc\n", max_lines=2)
