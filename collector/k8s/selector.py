"""Kubernetes label selectors: parse once, match many times.

The full syntax of `kubectl get -l`: comma-separated requirements, each one of
``key``, ``!key``, ``key=value``, ``key==value``, ``key!=value``, ``key in (v1, v2)`` and
``key notin (v1, v2)``. An empty selector selects everything. As in Kubernetes, ``!=`` and
``notin`` also match objects that lack the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["EVERYTHING", "Requirement", "Selector", "SelectorError", "is_label_key", "parse_selector"]

_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY_RE: Final = re.compile(rf"(?:[a-z0-9](?:[-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_NAME}")
_VALUE_RE: Final = re.compile(rf"(?:{_NAME})?")
# Tokens: an identifier-ish word, or one of the operators and punctuation.
_TOKEN_RE: Final = re.compile(r"\s*(==|!=|=|!|\(|\)|,|[^\s=!(),]+)")


class SelectorError(ValueError):
    """The selector text is not valid; the message says where."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "exists", "!", "=", "!=", "in", "notin"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op == "exists":
            return value is not None
        if self.op == "!":
            return value is None
        if self.op in ("=", "in"):
            return value is not None and value in self.values
        return value is None or value not in self.values  # "!=", "notin"

    def __str__(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!":
            return f"!{self.key}"
        if self.op in ("=", "!="):
            return f"{self.key}{self.op}{next(iter(self.values))}"
        return f"{self.key} {self.op} ({','.join(sorted(self.values))})"


@dataclass(frozen=True, slots=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING: Final = Selector()


def _tokens(text: str) -> list[tuple[str, int]]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise SelectorError(f"label selector {text!r}: cannot read at position {pos}")
        tokens.append((m.group(1), m.start(1)))
        pos = m.end()
    return tokens


def is_label_key(key: str) -> bool:
    """True for a valid label or annotation key: ``[prefix/]name``, name at most 63 characters."""
    return bool(_KEY_RE.fullmatch(key)) and len(key.rpartition("/")[2]) <= 63


def _key(text: str, token: str, pos: int) -> str:
    if not is_label_key(token):
        raise SelectorError(f"label selector {text!r}: {token!r} at position {pos} is not a valid label key")
    return token


def _value(text: str, token: str, pos: int) -> str:
    if not _VALUE_RE.fullmatch(token):
        raise SelectorError(
            f"label selector {text!r}: {token!r} at position {pos} is not a valid label value"
        )
    return token


def parse_selector(text: str) -> Selector:
    """Parse a label selector; raise SelectorError naming the position of the first problem."""
    tokens = _tokens(text)
    requirements: list[Requirement] = []
    i = 0

    def peek() -> tuple[str, int]:
        return tokens[i] if i < len(tokens) else ("", len(text))

    while i < len(tokens):
        token, pos = peek()
        if token == "!":
            i += 1
            name, npos = peek()
            requirements.append(Requirement(_key(text, name, npos), "!"))
            i += 1
        else:
            key = _key(text, token, pos)
            i += 1
            op, opos = peek()
            if op in ("=", "==", "!="):
                i += 1
                value, vpos = peek()
                if value in (",", ""):
                    value = ""  # `key=` selects an empty value
                else:
                    i += 1
                requirements.append(
                    Requirement(key, "!=" if op == "!=" else "=", frozenset({_value(text, value, vpos)}))
                )
            elif op in ("in", "notin"):
                i += 1
                if peek()[0] != "(":
                    raise SelectorError(
                        f"label selector {text!r}: expected '(' after {op} at position {opos}"
                    )
                i += 1
                values: set[str] = set()
                while True:
                    value, vpos = peek()
                    if value == ")":
                        i += 1
                        break
                    if value in (",", ""):
                        raise SelectorError(f"label selector {text!r}: expected a value at position {vpos}")
                    values.add(_value(text, value, vpos))
                    i += 1
                    sep, spos = peek()
                    if sep == ",":
                        i += 1
                    elif sep != ")":
                        raise SelectorError(
                            f"label selector {text!r}: expected ',' or ')' at position {spos}"
                        )
                if not values:
                    raise SelectorError(f"label selector {text!r}: {op} () needs at least one value")
                requirements.append(Requirement(key, op, frozenset(values)))
            elif op in (",", ""):
                requirements.append(Requirement(key, "exists"))
            else:
                raise SelectorError(
                    f"label selector {text!r}: unexpected {op!r} at position {opos} "
                    "(operators are =, ==, !=, in, notin, and ! before a key)"
                )
        sep, spos = peek()
        if sep == ",":
            i += 1
            if i >= len(tokens):
                raise SelectorError(f"label selector {text!r}: trailing ',' at position {spos}")
        elif sep != "":
            raise SelectorError(f"label selector {text!r}: expected ',' at position {spos}, got {sep!r}")
    return Selector(tuple(requirements))
