"""What every kind's decoder shares: text from kernel bytes, and caches of what repeats."""

from __future__ import annotations

from collector.event.layout import CGROUP_NAME_LEN

__all__ = ["Caches", "MalformedRecord", "argv_text", "cstr", "split_argv", "text"]


class MalformedRecord(ValueError):
    """The record's lengths do not add up, or its kind is unknown; the caller counts it and goes on."""


def text(raw: bytes) -> tuple[str, bool]:
    """Decode bytes as UTF-8; each byte that is not becomes a literal \\xNN escape."""
    try:
        return raw.decode(), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), True


def cstr(raw: bytes) -> str:
    """A NUL-padded C string."""
    end = raw.find(b"\0")
    return (raw if end < 0 else raw[:end]).decode("utf-8", "backslashreplace")


def split_argv(raw: bytes) -> list[bytes]:
    """Split the argv block. Every argument ends in NUL; a cut block ends in a partial one.

    Empty arguments survive: b"a\0\0b\0" is [b"a", b"", b"b"].
    """
    if not raw:
        return []
    parts = raw.split(b"\0")
    if raw[-1] == 0:
        parts.pop()
    return parts


def argv_text(block: bytes) -> tuple[list[str], bool]:
    """An argv block as text, and whether some bytes were not UTF-8 (escaped as \\xNN)."""
    try:
        argv = block.decode().split("\0")
    except UnicodeDecodeError:
        return [text(arg)[0] for arg in split_argv(block)], True
    if argv[-1] == "":
        argv.pop()
    return argv, False


class Caches:
    """What repeats from one record to the next, decoded once.

    A process's cgroup names, its comm and its cgroup's ancestors mostly repeat (one container
    execs many times), and decoding them is most of a record's cost. Names and comm are cached by
    their raw bytes, ancestors by cgroup id (a cgroup never moves). Each cache starts again when it
    reaches `size`, which bounds memory whatever the workload.
    """

    __slots__ = ("_ancestors", "_comms", "_names", "_size")

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._names: dict[bytes, tuple[str, str]] = {}
        self._comms: dict[bytes, str] = {}
        self._ancestors: dict[int, tuple[int, ...]] = {}

    def ancestors(self, cgroup_id: int, chain: tuple[int, ...]) -> tuple[int, ...]:
        """The ancestor ids as sent (0 ends the chain), parent first."""
        found = self._ancestors.get(cgroup_id)
        if found is None:
            found = chain[: chain.index(0)] if 0 in chain else chain
            if len(self._ancestors) >= self._size:
                self._ancestors = {}
            self._ancestors[cgroup_id] = found
        return found

    def names(self, raw: bytes) -> tuple[str, str]:
        """A cgroup's name and its parent's: two NUL-padded CGROUP_NAME_LEN fields, back to back."""
        found = self._names.get(raw)
        if found is None:
            found = (cstr(raw[:CGROUP_NAME_LEN]), cstr(raw[CGROUP_NAME_LEN:]))
            if len(self._names) >= self._size:
                self._names = {}
            self._names[raw] = found
        return found

    def comm(self, raw: bytes) -> str:
        found = self._comms.get(raw)
        if found is None:
            found = cstr(raw)
            if len(self._comms) >= self._size:
                self._comms = {}
            self._comms[raw] = found
        return found
