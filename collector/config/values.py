"""Parsers for setting values given as text (flags, environment variables, YAML strings)."""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = [
    "ENV_PREFIX",
    "ConfigError",
    "parse_bool",
    "parse_choice",
    "parse_hierarchy",
    "parse_roots",
    "parse_size",
]


ENV_PREFIX = "EXECLOG_"


class ConfigError(ValueError):
    """A setting is malformed; the message names the setting and where it came from."""


def parse_size(text: str) -> int:
    """Bytes from '32768', '32KiB', '8MiB', '1GiB' (binary units; k/M/G accepted as the same)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]i?[bB]?|[bB])?\s*", text)
    if not m:
        raise ValueError(f"not a size: {text!r} (examples: 32768, 32KiB, 8MiB)")
    unit = (m.group(2) or "").lower()[:1]
    return int(m.group(1)) << {"": 0, "b": 0, "k": 10, "m": 20, "g": 30}[unit]


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r} (use true or false)")


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text

    return parse


def parse_hierarchy(text: str) -> str:
    if text in ("auto", "v2") or re.fullmatch(r"v1:[a-z_]+", text):
        return text
    raise ValueError(f"{text!r} is not auto, v2 or v1:<controller> (e.g. v1:memory)")


def parse_roots(text: str) -> tuple[str, ...]:
    """Comma-separated cgroup paths relative to the hierarchy's root, e.g. kubepods,kubepods.slice."""
    roots = tuple(part.strip().strip("/") for part in text.split(","))
    for root in roots:
        if not root or ".." in root.split("/"):
            raise ValueError(f"{text!r}: each root is a path below the cgroup root, e.g. kubepods")
    return roots
