"""Label selectors, in the full syntax of `kubectl get -l`."""

from __future__ import annotations

import re

import pytest

from collector.k8s.selector import SelectorError, parse_selector

LABELS = {"com.coder.workspace.id": "ws-1", "app": "web", "tier": "front", "empty": ""}


@pytest.mark.parametrize(
    ("text", "selected"),
    [
        ("", True),
        ("   ", True),
        ("app=web", True),
        ("app==web", True),
        ("app=db", False),
        ("app!=db", True),
        ("app!=web", False),
        ("missing!=x", True),  # != also selects objects without the key
        ("com.coder.workspace.id", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("app in (web, db)", True),
        ("app in (db)", False),
        ("app notin (db,cache)", True),
        ("app notin (web)", False),
        ("missing notin (x)", True),
        ("missing in (x)", False),
        ("app=web,tier=front", True),
        ("app=web, tier=back", False),
        ("app=web,!missing,tier in (front),com.coder.workspace.id", True),
        ("empty=", True),
        ("empty=,app=web", True),
        ("example.com/role=x", False),
    ],
)
def test_selection(text: str, selected: bool) -> None:
    assert parse_selector(text).matches(LABELS) is selected


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("app=web,", "trailing ','"),
        ("app in web", "expected '('"),
        ("app in ()", "needs at least one value"),
        ("app in (a b)", "expected ',' or ')'"),
        ("app>1", "not a valid label key"),
        ("-bad=x", "not a valid label key"),
        ("app=not valid!", "expected ','"),
        ("app=" + "v" * 64, "not a valid label value"),
        ("a" * 64, "not a valid label key"),
        ("app web", "unexpected 'web' at position 4"),
    ],
)
def test_errors_say_where(text: str, where: str) -> None:
    with pytest.raises(SelectorError, match=re.escape(where)):
        parse_selector(text)


def test_round_trip_text() -> None:
    sel = parse_selector("app in (web,db), !x, tier!=back, com.coder.workspace.id")
    assert parse_selector(str(sel)) == sel
