"""bytes -> ExecEvent: one pure, bounds-checked function, fed golden bytes by the tests."""

from __future__ import annotations

from dataclasses import dataclass

from collector.event.layout import (
    ANCESTORS_MAX,
    FLAG_ARGC_UNKNOWN,
    FLAG_ARGV_TRUNCATED,
    HEADER,
)

__all__ = ["ExecEvent", "MalformedRecord", "decode", "split_argv", "text"]

_HEADER_SIZE = HEADER.size
_unpack = HEADER.unpack_from


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
    return raw.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")


def split_argv(raw: bytes) -> list[bytes]:
    """Split the argv block. Every argument ends in NUL; a cut block ends in a partial one.

    Empty arguments survive: b"a\\0\\0b\\0" is [b"a", b"", b"b"].
    """
    if not raw:
        return []
    parts = raw.split(b"\0")
    if raw[-1] == 0:
        parts.pop()
    return parts


def decode(raw: bytes, boot_to_unix_ns: int) -> ExecEvent:
    """Decode one record. `boot_to_unix_ns` turns the kernel's boot-time clock into wall time."""
    size = len(raw)
    if size < _HEADER_SIZE:
        raise MalformedRecord(f"record of {size} bytes is shorter than its {_HEADER_SIZE}-byte header")
    (
        boot_ns,
        cgroup_id,
        *rest,
    ) = _unpack(raw)
    ancestors = rest[:ANCESTORS_MAX]
    (
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
        comm,
        cgroup_name,
        parent_cgroup_name,
    ) = rest[ANCESTORS_MAX:]
    if _HEADER_SIZE + filename_len + argv_len != size:
        raise MalformedRecord(
            f"record of {size} bytes does not hold its header, {filename_len} filename bytes "
            f"and {argv_len} argv bytes"
        )
    if argv_len > argv_size:
        raise MalformedRecord(f"record carries {argv_len} argv bytes of a {argv_size}-byte argv")
    argv_start = _HEADER_SIZE + filename_len
    filename, bad_name = text(raw[_HEADER_SIZE:argv_start])
    block = raw[argv_start:]
    try:
        argv = block.decode().split("\0")
        if argv[-1] == "":
            argv.pop()
        bad_argv = False
    except UnicodeDecodeError:
        argv = [text(arg)[0] for arg in split_argv(block)]
        bad_argv = True
    if flags & FLAG_ARGC_UNKNOWN:
        argc = len(argv)
    return ExecEvent(
        time_ns=boot_ns + boot_to_unix_ns,
        boot_ns=boot_ns,
        pid=pid,
        ppid=ppid,
        uid=uid,
        gid=gid,
        euid=euid,
        egid=egid,
        pid_ns=pid_ns,
        mnt_ns=mnt_ns,
        cgroup_id=cgroup_id,
        cgroup_ancestors=tuple(a for a in ancestors if a),
        cgroup_name=_cstr(cgroup_name),
        parent_cgroup_name=_cstr(parent_cgroup_name),
        comm=_cstr(comm),
        filename=filename,
        argv=argv,
        argc=argc,
        argv_size=argv_size,
        truncated=bool(flags & FLAG_ARGV_TRUNCATED),
        non_utf8=bad_name or bad_argv,
        flags=flags,
    )
