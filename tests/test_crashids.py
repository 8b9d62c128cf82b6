"""Crash id parsing and line reading (pure functions)."""

import io

import pytest

from lib.crashids import parse_crash_id, read_lines

ID = "de1bb258-cbbf-4589-a673-34f800160918"


@pytest.mark.parametrize(
    "text",
    [
        ID,
        f"  {ID}\t",
        f"bp-{ID}",
        f"https://crash-stats.mozilla.org/report/index/{ID}",
        f"http://127.0.0.1:8000/report/index/{ID}/",
        f"https://crash-stats.mozilla.org/report/index/bp-{ID}?foo=1",
        f"\ufeff{ID}",
    ],
)
def test_accepted_forms(text):
    assert parse_crash_id(text) == ID


@pytest.mark.parametrize(
    "text",
    [
        "",
        ID.upper(),
        ID[:-1],
        ID + "0",
        "de1bb258-cbbf-4589-a673-34f8001609zz",
        f"bp:{ID}",
        f"https://crash-stats.mozilla.org/search/?uuid={ID}",
        f"{ID} extra",
        "-",
    ],
)
def test_rejected_forms(text):
    assert parse_crash_id(text) is None


def test_read_lines_tolerates_bom_crlf_blanks_and_comments():
    raw = f"\ufeff{ID}\r\n\r\n# a comment\r\n  bp-{ID}  # again\r\nnot-an-id\r\n   \r\n"
    lines = list(read_lines(io.StringIO(raw, newline=None)))
    assert [(line.number, line.crash_id) for line in lines] == [(1, ID), (4, ID), (5, None)]
    assert lines[2].text == "not-an-id"
