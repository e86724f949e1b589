"""bytes -> ExecEvent: one pure, bounds-checked function, fed golden bytes by the tests."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TypeVar

from collector.event.layout import CGROUP_NAME_LEN, FLAG_ARGC_UNKNOWN, FLAG_ARGV_TRUNCATED, HEADER

__all__ = ["Decoder", "ExecEvent", "MalformedRecord", "decode", "split_argv", "text"]

_HEADER_SIZE = HEADER.size
_K = TypeVar("_K")
_V = TypeVar("_V")


class MalformedRecord(ValueError):
    """The record's lengths do not add up; the caller counts it and goes on."""


@dataclass(slots=True)
class ExecEvent:
    """One successful exec, as the kernel saw it."""

    time_ns: int  # wall clock (Unix epoch, ns) of the exec
    boot_ns: int  # CLOCK_BOOTTIME of the exec, as recorded
    pid: int
    ppid: int
    uid: int
    gid: int
    euid: int
    egid: int
    pid_ns: int
    mnt_ns: int
    cgroup_id: int
    cgroup_ancestors: tuple[int, ...]  # parent first; the kernel sends up to ANCESTORS_MAX
    cgroup_name: str
    parent_cgroup_name: str
    comm: str  # the caller's comm, before the exec
    filename: str
    argv: list[str]
    argc: int  # true argc, also when argv was cut
    argv_size: int  # true byte length of argv, also when cut
    truncated: bool  # argv was cut at the argv cap
    non_utf8: bool  # some argv or filename bytes were not UTF-8 and were escaped as \xNN
    flags: int  # FLAG_* of collector.event.layout, as sent


def text(raw: bytes) -> tuple[str, bool]:
    """Decode bytes as UTF-8; each byte that is not becomes a literal \\xNN escape."""
    try:
        return raw.decode(), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), True


def _cstr(raw: bytes) -> str:
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


# The integer part of the header (offsets 0..127); the three names follow it.
_INTS = struct.Struct("<QQ8Q11IHH")
_COMM, _NAMES = slice(128, 144), slice(144, 400)
assert _INTS.size == 128 and _HEADER_SIZE == 400


class Decoder:
    """Decodes records, remembering what repeats from one exec to the next.

    An exec's cgroup names, its comm and its cgroup's ancestors mostly repeat (one container
    execs many times), and decoding them is most of a record's cost, so each is cached: names and
    comm by their raw bytes, ancestors by cgroup id (a cgroup never moves). Each cache is cleared
    when it reaches `cache_size`, which bounds memory whatever the workload.
    """

    __slots__ = ("_ancestors", "_cache_size", "_comms", "_names")

    def __init__(self, cache_size: int = 1024) -> None:
        self._cache_size = cache_size
        self._names: dict[bytes, tuple[str, str]] = {}
        self._comms: dict[bytes, str] = {}
        self._ancestors: dict[int, tuple[int, ...]] = {}

    def decode(self, raw: bytes, boot_to_unix_ns: int) -> ExecEvent:
        """Decode one record. `boot_to_unix_ns` turns the kernel's boot-time clock into wall time."""
        size = len(raw)
        if size < _HEADER_SIZE:
            raise MalformedRecord(f"record of {size} bytes is shorter than its {_HEADER_SIZE}-byte header")
        (
            boot_ns,
            cgroup_id,
            a0,
            a1,
            a2,
            a3,
            a4,
            a5,
            a6,
            a7,
            pid,
            ppid,
            uid,
            gid,
            euid,
            egid,
            pid_ns,
            mnt_ns,
            argc,
            argv_size,
            argv_len,
            filename_len,
            flags,
        ) = _INTS.unpack_from(raw)
        argv_start = _HEADER_SIZE + filename_len
        if argv_start + argv_len != size:
            raise MalformedRecord(
                f"record of {size} bytes does not hold its header, {filename_len} filename bytes "
                f"and {argv_len} argv bytes"
            )
        if argv_len > argv_size:
            raise MalformedRecord(f"record carries {argv_len} argv bytes of a {argv_size}-byte argv")

        ancestors = self._ancestors.get(cgroup_id)
        if ancestors is None:
            chain = (a0, a1, a2, a3, a4, a5, a6, a7)
            ancestors = chain[: chain.index(0)] if 0 in chain else chain
            self._ancestors = _remember(self._ancestors, cgroup_id, ancestors, self._cache_size)
        key = raw[_NAMES]
        names = self._names.get(key)
        if names is None:
            names = (_cstr(key[:CGROUP_NAME_LEN]), _cstr(key[CGROUP_NAME_LEN:]))
            self._names = _remember(self._names, key, names, self._cache_size)
        key = raw[_COMM]
        comm = self._comms.get(key)
        if comm is None:
            comm = _cstr(key)
            self._comms = _remember(self._comms, key, comm, self._cache_size)

        raw_name = raw[_HEADER_SIZE:argv_start]
        try:
            filename = raw_name.decode()
            bad = False
        except UnicodeDecodeError:
            filename, bad = raw_name.decode("utf-8", "backslashreplace"), True
        block = raw[argv_start:]
        try:
            argv = block.decode().split("\0")
            if argv[-1] == "":
                argv.pop()
        except UnicodeDecodeError:
            argv = [text(arg)[0] for arg in split_argv(block)]
            bad = True
        if flags & FLAG_ARGC_UNKNOWN:
            argc = len(argv)
        return ExecEvent(
            boot_ns + boot_to_unix_ns,
            boot_ns,
            pid,
            ppid,
            uid,
            gid,
            euid,
            egid,
            pid_ns,
            mnt_ns,
            cgroup_id,
            ancestors,
            names[0],
            names[1],
            comm,
            filename,
            argv,
            argc,
            argv_size,
            bool(flags & FLAG_ARGV_TRUNCATED),
            bad,
            flags,
        )


def _remember(cache: dict[_K, _V], key: _K, value: _V, limit: int) -> dict[_K, _V]:
    if len(cache) >= limit:
        cache = {}
    cache[key] = value
    return cache


def decode(raw: bytes, boot_to_unix_ns: int) -> ExecEvent:
    """Decode one record with no memory of earlier ones (see Decoder for the cached path)."""
    return Decoder(cache_size=1).decode(raw, boot_to_unix_ns)
