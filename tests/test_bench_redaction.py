"""`make bench` keeps its redaction table, and its cases are what they claim to be."""

from __future__ import annotations

from bench.redaction import CASES, measure, table
from collector.policy import Redactor


def test_the_cases_with_secrets_are_masked_and_the_others_are_not() -> None:
    redactor = Redactor()
    for case in CASES:
        _, fired = redactor.redact(case.argv)
        assert bool(fired) == case.secret, case.name


def test_one_tiny_round_gives_a_row_per_case() -> None:
    costs = measure(rounds=1, budget_s=0.0005)
    assert [c.name for c in costs[: len(CASES)]] == [c.name for c in CASES]
    assert costs[-1].name.startswith("corpus: ")
    for cost in costs:
        assert all(cost.median(column) > 0 for column in ("decode", "redact", "no prefilter", "policy"))
    text = table(costs, 1)
    assert text.count("\n| ") == 2 + len(CASES) + 1  # header, separator, the cases, the corpus
    assert "| 32 KiB argv | " in text
