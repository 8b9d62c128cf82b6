"""Deploy tag schemes: ordering, next tag, validation."""

import datetime

import pytest

from lib.deploytags import TagScheme
from lib.errors import UserError

TODAY = datetime.date(2026, 12, 3)


def test_integer_tags_sort_numerically_not_lexically():
    scheme = TagScheme("integer")
    assert scheme.previous(["98", "99", "100", "v2", "2026.01.01", "release"]) == "100"
    assert scheme.next("100", [], TODAY) == "101"


def test_integer_first_deploy_is_1():
    assert TagScheme("integer").next(None, [], TODAY) == "1"


def test_integer_with_prefix_ignores_unprefixed_tags():
    scheme = TagScheme("integer", "v")
    assert scheme.previous(["v9", "v10", "11", "v"]) == "v10"
    assert scheme.next("v10", [], TODAY) == "v11"


def test_date_tags_order_by_date_then_suffix():
    scheme = TagScheme("date")
    tags = ["2026.11.30", "2026.12.01", "2026.12.01-2", "2026.12.01-10", "2026.12.01-9", "100"]
    assert scheme.previous(tags) == "2026.12.01-10"


def test_date_next_is_today_then_next_free_suffix():
    scheme = TagScheme("date", "v")
    assert scheme.next("v2026.12.01", ["v2026.12.01"], TODAY) == "v2026.12.03"
    assert scheme.next("v2026.12.03", ["v2026.12.03"], TODAY) == "v2026.12.03-2"
    tags = ["v2026.12.03", "v2026.12.03-2", "v2026.12.03-3"]
    assert scheme.next("v2026.12.03-3", tags, TODAY) == "v2026.12.03-4"


def test_date_scheme_rejects_impossible_dates_and_suffix_1():
    scheme = TagScheme("date")
    assert not scheme.is_valid("2026.02.30")
    assert not scheme.is_valid("2026.12.03-1")
    assert scheme.is_valid("2026.12.03-2")
    assert not scheme.is_valid("2026.12.3")


def test_date_tag_after_today_is_refused():
    with pytest.raises(UserError, match="dated after today"):
        TagScheme("date").next("2027.01.01", ["2027.01.01"], TODAY)


def test_unknown_scheme_is_refused():
    with pytest.raises(UserError, match="deploy.tag_scheme"):
        TagScheme("semver")


@pytest.mark.parametrize("prefix", ["v", "release-", "deploys/", "v.", "ops/prod_"])
def test_prefixes_that_make_valid_tag_names(prefix):
    assert TagScheme("date", prefix).next(None, [], datetime.date(2026, 1, 5)).startswith(prefix)


@pytest.mark.parametrize("prefix", ["v..", "v//", "x.lock/", "v/.", ".v", "-v", "v 1", "v~"])
def test_prefixes_git_would_refuse_in_a_tag_name(prefix):
    """Regression: "v.." and the like were accepted, and the plan proposed tags that
    `git check-ref-format` rejects."""
    with pytest.raises(UserError, match="is not usable in a tag name"):
        TagScheme("date", prefix)


def test_digits_of_other_scripts_are_not_deploy_tags():
    """Regression: `\\d` matched "1٠٠٠" (Arabic-Indic zeros), so it became the last tag."""
    scheme = TagScheme("integer")
    assert scheme.previous(["100", "1٠٠٠"]) == "100"
    assert scheme.next("100", ["100", "1٠٠٠"], datetime.date(2026, 1, 5)) == "101"
    assert not TagScheme("date").is_valid("٢٠٢٦.01.05")
