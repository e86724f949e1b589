"""The policy's structured settings, read from YAML and checked before the collector starts.

Each parser takes the YAML value of one key and returns frozen, validated objects, or raises
`SpecError` whose `where` says which item and field is wrong (``[1].pattern``), so that
`collector.config` can name the file and key in one line.

    redaction_rules:            # added to the built-in rules
      - name: vault-id
        pattern: '^--vault-id=[^@]*@(?P<secret>.+)$'
    disabled_redaction_rules: [jwt, cli-password]
    exclusions:
      - name: readiness-probes
        binaries: [/bin/grpc_health_probe, "/usr/lib/nagios/plugins/*"]
        pod_selector: "app in (web, api)"
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from collector.k8s import SelectorError, parse_selector
from collector.policy.exclude import Exclusion
from collector.policy.patterns import BUILTIN_RULES
from collector.policy.redact import combine, is_secret_group, scoped

__all__ = [
    "RedactionRule",
    "SpecError",
    "parse_disabled_rules",
    "parse_exclusions",
    "parse_redaction_rules",
]

BUILTIN_NAMES: Final = tuple(rule.name for rule in BUILTIN_RULES)
_NAME_RE: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_NUMBERED_BACKREF: Final = re.compile(r"(?<!\\)(?:\\\\)*\\(?:[1-9]|g<\d+>)|\(\?\(\d+\)")
# A user rule runs on every argument of every exec, so one that backtracks badly would stall the
# collector. Each is tried on long arguments made to provoke that, in a child process that can be
# killed, and must finish each within the budget.
_PROBE_SIZE: Final = 32768
_PROBE_BUDGET_S: Final = 0.2
_PROBE_TIMEOUT_S: Final = 5.0
_PROBE_CODE: Final = r"""
import json, re, signal, sys
size, budget = int(sys.argv[1]), float(sys.argv[2])
class Slow(Exception):
    pass
def too_slow(signum, frame):
    raise Slow
signal.signal(signal.SIGALRM, too_slow)  # re checks for signals while it matches
chars = "a0 -=/.:_@\t\n'\"!"
inputs = [c * size for c in chars] + [c * (size - 1) + "!" for c in chars]
inputs += [(a + b) * (size // 2) for a in "a0-" for b in "=: ./@"]
for i, pattern in enumerate(json.load(sys.stdin)):
    regex = re.compile(pattern)
    for text in inputs:
        signal.setitimer(signal.ITIMER_REAL, budget)
        try:
            for _ in regex.finditer(text):
                pass
        except Slow:
            print(json.dumps([i, repr(text[:8])]), flush=True)
            sys.exit(0)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    print(json.dumps([i, None]), flush=True)
"""


class SpecError(ValueError):
    """A structured setting is malformed; `where` is the item and field, e.g. "[2].pattern"."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where


@dataclass(frozen=True, slots=True)
class RedactionRule:
    """A user's redaction rule: a regex searched in each argument; its `secret` group is masked."""

    name: str
    pattern: str


def _items(raw: Any, kind: str) -> list[Mapping[str, Any]]:
    if not isinstance(raw, list):
        raise SpecError("", f"expected a list of {kind}, got {type(raw).__name__}")
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise SpecError(f"[{i}]", f"expected a mapping with a name, got {type(item).__name__}")
    return raw


def _fields(item: Mapping[str, Any], i: int, required: Sequence[str], optional: Sequence[str] = ()) -> None:
    unknown = sorted(str(k) for k in item if k not in (*required, *optional))
    if unknown:
        raise SpecError(
            f"[{i}]", f"unknown fields {', '.join(unknown)} (known: {', '.join((*required, *optional))})"
        )
    for key in required:
        if key not in item:
            raise SpecError(f"[{i}]", f"missing the field {key}")


def _name(item: Mapping[str, Any], i: int, taken: set[str], builtin: bool = False) -> str:
    name = item["name"]
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise SpecError(f"[{i}].name", f"{name!r} is not a name of lower-case letters, digits and dashes")
    if builtin and name in BUILTIN_NAMES:
        raise SpecError(f"[{i}].name", f"{name} is a built-in rule's name; pick another")
    if name in taken:
        raise SpecError(f"[{i}].name", f"{name} is used twice")
    taken.add(name)
    return name


def _check_pattern(pattern: Any, where: str) -> None:
    if not isinstance(pattern, str) or not pattern:
        raise SpecError(where, "expected a regular expression as a string")
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise SpecError(where, f"not a valid regular expression: {exc}") from exc
    if not any(is_secret_group(name) for name in regex.groupindex):
        raise SpecError(where, "has no group named secret, e.g. (?P<secret>...), to say what to mask")
    if _NUMBERED_BACKREF.search(pattern):
        raise SpecError(where, "refers to a group by number; name the group and use (?P=name)")
    for sample in ("", " ", "a", "-", "--x=y", "a b", "x\ny"):
        for m in regex.finditer(sample):
            if m.end() == m.start():
                raise SpecError(
                    where, f"can match an empty string (in {sample!r}), so it would match everywhere"
                )
    try:
        combine([("probe", scoped(pattern))], "U")
    except re.error as exc:
        raise SpecError(where, f"cannot be combined with the other rules: {exc}") from exc


def _probe_backtracking(patterns: Sequence[str]) -> tuple[int, str] | None:
    """(index, problem) of the first pattern that is too slow on a long argument, or None."""
    command = [sys.executable, "-I", "-c", _PROBE_CODE, str(_PROBE_SIZE), str(_PROBE_BUDGET_S)]
    timed_out = False
    try:
        proc = subprocess.run(
            command,
            input=json.dumps(list(patterns)),
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_S + len(patterns),
            check=False,
        )
        out, err = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:  # the child is killed; what it printed tells how far it got
        timed_out = True
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = ""
    finished = 0
    for line in out.splitlines():
        index, sample = json.loads(line)
        if sample is not None:
            return (
                index,
                f"takes more than {_PROBE_BUDGET_S}s on a {_PROBE_SIZE // 1024} KiB argument like {sample}…",
            )
        finished += 1
    if finished == len(patterns):
        return None
    if timed_out:
        return finished, f"did not finish on a {_PROBE_SIZE // 1024} KiB argument within {_PROBE_TIMEOUT_S}s"
    return (
        finished,
        f"could not be checked: {err.strip().splitlines()[-1] if err.strip() else 'the check failed'}",
    )


def parse_redaction_rules(raw: Any) -> tuple[RedactionRule, ...]:
    items = _items(raw, "redaction rules")
    taken: set[str] = set()
    rules = []
    for i, item in enumerate(items):
        _fields(item, i, ("name", "pattern"))
        name = _name(item, i, taken, builtin=True)
        _check_pattern(item["pattern"], f"[{i}].pattern")
        rules.append(RedactionRule(name, item["pattern"]))
    if rules:
        slow = _probe_backtracking([rule.pattern for rule in rules])
        if slow is not None:
            index, problem = slow
            raise SpecError(
                f"[{index}].pattern",
                f"{problem} (catastrophic backtracking?); it would stall the collector, so simplify it",
            )
    return tuple(rules)


def parse_disabled_rules(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        raise SpecError("", "expected a list of built-in rule names")
    for i, name in enumerate(raw):
        if name not in BUILTIN_NAMES:
            raise SpecError(f"[{i}]", f"{name!r} is not a built-in rule; they are {', '.join(BUILTIN_NAMES)}")
    return tuple(dict.fromkeys(raw))


def parse_exclusions(raw: Any) -> tuple[Exclusion, ...]:
    items = _items(raw, "exclusions")
    taken: set[str] = set()
    rules = []
    for i, item in enumerate(items):
        _fields(item, i, ("name",), ("binaries", "pod_selector"))
        name = _name(item, i, taken)
        binaries = item.get("binaries", [])
        if isinstance(binaries, str):
            binaries = [binaries]
        if not isinstance(binaries, list) or not all(isinstance(b, str) and b for b in binaries):
            raise SpecError(f"[{i}].binaries", "expected a list of paths or globs")
        selector = None
        if "pod_selector" in item:
            text = item["pod_selector"]
            if not isinstance(text, str) or not text.strip():
                raise SpecError(f"[{i}].pod_selector", "expected a non-empty label selector, e.g. app=web")
            try:
                selector = parse_selector(text)
            except SelectorError as exc:
                raise SpecError(f"[{i}].pod_selector", str(exc)) from exc
        if not binaries and selector is None:
            raise SpecError(
                f"[{i}]", "needs binaries, a pod_selector or both; alone it would drop every exec"
            )
        rules.append(Exclusion(name, tuple(binaries), selector))
    return tuple(rules)
