"""Masking secrets in argv: precompiled rules, run only where their hints say they could match.

The argv is joined into one string, each argument preceded by a NUL, and lower-cased once. A
built-in rule (`patterns.BUILTIN_RULES`) runs only if the argv contains one of its hint literals;
most command lines contain none, and cost a few substring searches. A rule that does run is a few
precompiled regexes that `re` scans quickly for their leading literal (see `patterns`), each over
the whole text, so no rule's match can hide another rule's secret.

User rules (from the YAML config) are searched in each argument on its own, so that ``^``, ``$``
and ``.`` mean what a user expects; they are combined into one alternation, each in a group named
after it, with their own group names prefixed so that every rule may call its group `secret`.

A match masks its groups named ``secret`` or ``secret_…`` with `MASK` and keeps the rest readable.
When a match keeps a readable stretch before its secret (a program rule that skips arguments to
reach ``-p``, or one user rule's match over another's), that stretch is searched again, so no
match hides another within the same regex either.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from collector.policy.patterns import BUILTIN_RULES, Rule

__all__ = ["MASK", "CombinedRules", "Redactor", "combine", "is_secret_group", "scoped"]

MASK: Final = "****"

_GROUP_REF: Final = re.compile(r"\(\?P<(\w+)>|\(\?P=(\w+)\)|\(\?\((\w+)\)")
_LEADING_FLAGS: Final = re.compile(r"\(\?([aiLmsux]+)\)")


def scoped(pattern: str) -> str:
    """The pattern as one group whose leading global flags (``(?i)``) apply inside it only.

    Python accepts global flags only at the start of a whole pattern, so they cannot stay global
    once the pattern is one branch of an alternation."""
    flags = ""
    while m := _LEADING_FLAGS.match(pattern):
        flags += m.group(1)
        pattern = pattern[m.end() :]
    if not flags:
        return f"(?:{pattern})"
    # A verbose pattern may end in a comment, which would swallow the closing parenthesis.
    return f"(?{flags}:{pattern}\n)" if "x" in flags else f"(?{flags}:{pattern})"


def _rename(pattern: str, prefix: str) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return f"(?P<{prefix}{m.group(1)}>"
        if m.group(2) is not None:
            return f"(?P={prefix}{m.group(2)})"
        return f"(?({prefix}{m.group(3)})"

    return _GROUP_REF.sub(sub, pattern)


@dataclass(frozen=True, slots=True)
class CombinedRules:
    """One alternation of several rules; `rule_of` maps a match's last group to its rule."""

    regex: re.Pattern[str]
    names: tuple[str, ...]  # rule names, by index
    rule_of: dict[str, int]  # wrapper group name -> rule index
    secret_groups: tuple[tuple[int, ...], ...]  # per rule: group numbers to mask


def is_secret_group(name: str) -> bool:
    return name == "secret" or name.startswith("secret_")


def combine(patterns: Sequence[tuple[str, str]], tag: str, flags: int = 0) -> CombinedRules:
    """Combine (name, pattern) pairs; each pattern's secret groups are what to mask.

    Group names are prefixed per rule, so every rule may call its group `secret`. Raises
    re.error when a pattern, renamed, no longer has the groups it had on its own."""
    branches = []
    for i, (_, pattern) in enumerate(patterns):
        original = re.compile(pattern, flags)
        renamed = _rename(pattern, f"{tag}{i}__")
        check = re.compile(renamed, flags)
        if check.groups != original.groups or set(check.groupindex) != {
            f"{tag}{i}__{name}" for name in original.groupindex
        }:
            raise re.error("its named groups cannot be told apart from the text around them")
        branches.append(f"(?P<{tag}{i}>{renamed})")
    regex = re.compile("|".join(branches), flags)
    secret_groups = tuple(
        tuple(
            number
            for name, number in regex.groupindex.items()
            if name.startswith(f"{tag}{i}__") and is_secret_group(name.removeprefix(f"{tag}{i}__"))
        )
        for i in range(len(patterns))
    )
    return CombinedRules(
        regex,
        tuple(name for name, _ in patterns),
        {f"{tag}{i}": i for i in range(len(patterns))},
        secret_groups,
    )


Span = tuple[int, int, str]  # start, end, rule name; offsets into the NUL-joined text


@dataclass(frozen=True, slots=True)
class _Pattern:
    regex: re.Pattern[str]
    secret_groups: tuple[int, ...]
    anchored: bool  # starts with \A: tried once, at the start, instead of searched for


def _pattern(source: str, flags: int) -> _Pattern:
    regex = re.compile(source, flags)
    groups = tuple(n for name, n in regex.groupindex.items() if is_secret_group(name))
    if not groups:
        raise ValueError(f"a pattern has no secret group: {source[:60]}")
    return _Pattern(regex, groups, source.lstrip().startswith("\\A"))


@dataclass(frozen=True, slots=True)
class _Compiled:
    name: str
    folded: bool  # runs on the lower-cased text
    patterns: tuple[_Pattern, ...]
    # The same, case-insensitive, for the rare text whose length lower() changes (e.g. "İ").
    unfolded: tuple[_Pattern, ...]


def _compile(rule: Rule) -> _Compiled:
    patterns = tuple(_pattern(p, re.VERBOSE) for p in rule.patterns)
    unfolded = tuple(_pattern(p, re.VERBOSE | re.IGNORECASE) for p in rule.patterns) if rule.folded else ()
    return _Compiled(rule.name, rule.folded, patterns, unfolded)


class Redactor:
    """Masks secrets in an argv. Built once at start-up; `redact` is called for every exec."""

    def __init__(
        self,
        rules: Sequence[Rule] = BUILTIN_RULES,
        user_rules: Sequence[tuple[str, str]] = (),
        *,
        prefilter: bool = True,
    ) -> None:
        self.rule_names = tuple(r.name for r in rules) + tuple(name for name, _ in user_rules)
        self._rules = tuple(_compile(rule) for rule in rules)
        # Every hint once, each with the rules it may wake; most argvs wake none.
        by_hint: dict[str, list[int]] = {}
        for i, rule in enumerate(rules):
            for hint in rule.hints:
                by_hint.setdefault(hint, []).append(i)
        self._hints = tuple((hint, tuple(indices)) for hint, indices in by_hint.items())
        self._all = tuple(range(len(rules)))
        self._user = combine([(n, scoped(p)) for n, p in user_rules], "U") if user_rules else None
        self._prefilter = prefilter

    def redact(self, argv: list[str]) -> tuple[list[str], tuple[str, ...]]:
        """(argv with secrets masked, names of the rules that changed it).

        When nothing changes, the very same list comes back and the names are empty."""
        if not argv:
            return argv, ()
        text = "\0" + "\0".join(argv)
        lowered = text.lower()
        spans: list[Span] = []
        run: Sequence[int] = self._all
        if self._prefilter:
            woken = [indices for hint, indices in self._hints if hint in lowered]
            run = sorted({i for indices in woken for i in indices}) if woken else ()
        if run:
            same_length = len(lowered) == len(text)
            for i in run:
                rule = self._rules[i]
                if not rule.folded:
                    patterns, subject = rule.patterns, text
                elif same_length:
                    patterns, subject = rule.patterns, lowered
                else:
                    patterns, subject = rule.unfolded, text
                for pattern in patterns:
                    _search(pattern, rule.name, subject, spans)
        if self._user is not None:
            _search_each(self._user, argv, spans)
        if not spans:
            return argv, ()
        return _apply(argv, spans)


def _matches(
    regex: re.Pattern[str], text: str, secret_groups: Callable[[re.Match[str]], tuple[int, ...]]
) -> Iterator[tuple[re.Match[str], tuple[int, ...]]]:
    """Every match with its secret groups, the readable stretch before a secret searched again."""
    search = regex.search
    regions = [(0, len(text))]
    while regions:
        pos, endpos = regions.pop()
        while pos <= endpos:
            m = search(text, pos, endpos)
            if m is None:
                break
            groups = secret_groups(m)
            yield m, groups
            start, end = m.span()
            first_secret = min((m.start(g) for g in groups if m.end(g) > m.start(g)), default=end)
            if first_secret > start + 1:
                regions.append((start + 1, first_secret))
            pos = end if end > start else start + 1


def _search(pattern: _Pattern, name: str, text: str, spans: list[Span]) -> None:
    """`_matches` for one built-in pattern, written out: it runs for every woken rule."""
    groups = pattern.secret_groups
    if pattern.anchored:
        m = pattern.regex.match(text)
        if m is not None:
            spans.extend((s, e, name) for s, e in map(m.span, groups) if e > s)
        return
    search = pattern.regex.search
    regions = [(0, len(text))]
    while regions:
        pos, endpos = regions.pop()
        while pos <= endpos:
            m = search(text, pos, endpos)
            if m is None:
                break
            start, end = m.span()
            first_secret = end
            for group in groups:
                s, e = m.span(group)
                if e > s:
                    spans.append((s, e, name))
                    first_secret = min(first_secret, s)
            if first_secret > start + 1:
                regions.append((start + 1, first_secret))
            pos = end if end > start else start + 1


def _search_each(rules: CombinedRules, argv: list[str], spans: list[Span]) -> None:
    rule_of, groups_of, names = rules.rule_of, rules.secret_groups, rules.names

    def secret_groups(m: re.Match[str]) -> tuple[int, ...]:
        return groups_of[rule_of[m.lastgroup or ""]]

    offset = 1  # offsets are into the joined text, where argv[0] starts after a NUL
    for arg in argv:
        for m, groups in _matches(rules.regex, arg, secret_groups):
            name = names[rule_of[m.lastgroup or ""]]
            spans.extend((offset + s, offset + e, name) for s, e in map(m.span, groups) if e > s)
        offset += len(arg) + 1


def _apply(argv: list[str], spans: list[Span]) -> tuple[list[str], tuple[str, ...]]:
    """Replace each merged run of spans by MASK, argument by argument."""
    starts = list(itertools.accumulate((len(a) + 1 for a in argv[:-1]), initial=1))
    spans.sort()
    out = list(argv)
    fired: list[str] = []
    i = 0
    while i < len(spans):
        index = bisect.bisect_right(starts, spans[i][0]) - 1
        base, arg = starts[index], argv[index]
        pieces: list[str] = []
        kept = 0  # offset in arg up to which text is copied or masked
        changed: list[str] = []
        while i < len(spans) and spans[i][0] < base + len(arg) + 1:
            s, e, name = spans[i]
            s, e = max(s - base, kept), e - base
            i += 1
            if e <= kept:
                continue  # inside a run already masked
            names = [name]
            # Spans that overlap or touch become one mask, so `****` never reveals their count.
            while i < len(spans) and spans[i][0] - base <= e:
                e = max(e, spans[i][1] - base)
                names.append(spans[i][2])
                i += 1
            if arg[s:e] != MASK:
                changed += names
            pieces += [arg[kept:s], MASK]
            kept = e
        if changed:
            out[index] = "".join(pieces) + arg[kept:]
            fired += changed
    if out == argv:
        return argv, ()
    return out, tuple(dict.fromkeys(fired))
