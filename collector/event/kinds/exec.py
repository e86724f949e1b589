"""The exec record: one successful exec, from sched_process_exec.

offset  size  field
     0    16  header              kind, flags (FLAG_* below), pid (tgid after the exec), boot_ns
    16     8  cgroup_id           u64  kernfs id (inode) of the task's cgroup
    24    64  ancestor_ids[8]     u64  parent first, towards the root; 0 = none
    88    40  ppid, uid, gid, euid, egid, pid_ns, mnt_ns, argc (true), argv_size (true
              byte length), argv_len (bytes carried): 10 x u32
   128     4  filename_len        u32  filename bytes carried, no NUL
   132    16  comm                     the caller's comm before the exec, NUL-padded
   148   128  cgroup_name
   276   128  parent_cgroup_name
   404     4  _reserved
   408     -  filename bytes, then argv bytes (NUL after each argument)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

from collector.event.layout import ANCESTORS_MAX, CGROUP_NAME_LEN, COMM_LEN, HEADER, Layout
from collector.event.parts import Caches, MalformedRecord, argv_text

__all__ = [
    "EXEC",
    "FLAG_ANCESTORS_TRUNCATED",
    "FLAG_ARGC_UNKNOWN",
    "FLAG_ARGV_TRUNCATED",
    "FLAG_ARGV_UNREADABLE",
    "FLAG_CGROUP_NAME_TRUNCATED",
    "FLAG_COMM_AFTER_EXEC",
    "FLAG_PARENT_CGROUP_NAME_TRUNCATED",
    "KIND_EXEC",
    "ExecEvent",
    "decode_exec",
]

KIND_EXEC: Final = 1  # EXECLOG_KIND_EXEC

FLAG_ARGV_TRUNCATED: Final = 1 << 0
FLAG_ARGV_UNREADABLE: Final = 1 << 1
FLAG_ARGC_UNKNOWN: Final = 1 << 2
FLAG_COMM_AFTER_EXEC: Final = 1 << 3
FLAG_CGROUP_NAME_TRUNCATED: Final = 1 << 4
FLAG_PARENT_CGROUP_NAME_TRUNCATED: Final = 1 << 5
FLAG_ANCESTORS_TRUNCATED: Final = 1 << 6

EXEC: Final = Layout(
    "execlog_exec",
    (
        *HEADER.fields,
        ("cgroup_id", "Q"),
        ("ancestor_ids", f"{ANCESTORS_MAX}Q"),
        ("ppid", "I"),
        ("uid", "I"),
        ("gid", "I"),
        ("euid", "I"),
        ("egid", "I"),
        ("pid_ns", "I"),
        ("mnt_ns", "I"),
        ("argc", "I"),
        ("argv_size", "I"),
        ("argv_len", "I"),
        ("filename_len", "I"),
        ("comm", f"{COMM_LEN}s"),
        ("cgroup_name", f"{CGROUP_NAME_LEN}s"),
        ("parent_cgroup_name", f"{CGROUP_NAME_LEN}s"),
        ("_reserved", "I"),
    ),
)


@dataclass(slots=True)
class ExecEvent:
    """One successful exec, as the kernel saw it."""

    kind: ClassVar[str] = "exec"

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
    argv: list[str]  # masked in place by policy when a redaction rule fires
    argc: int  # true argc, also when argv was cut
    argv_size: int  # true byte length of argv, also when cut
    truncated: bool  # argv was cut at the argv cap
    non_utf8: bool  # some argv or filename bytes were not UTF-8 and were escaped as \xNN
    flags: int  # FLAG_* above, as sent


_SIZE: Final = EXEC.size
_NUMBERS: Final = EXEC.prefix("comm")
_COMM: Final = EXEC.span("comm")
_NAMES: Final = EXEC.span("cgroup_name", "parent_cgroup_name")


def decode_exec(caches: Caches, raw: bytes, boot_to_unix_ns: int) -> ExecEvent:
    size = len(raw)
    if size < _SIZE:
        raise MalformedRecord(f"exec record of {size} bytes is shorter than its {_SIZE}-byte header")
    (
        _kind,
        flags,
        pid,
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
    ) = _NUMBERS.unpack_from(raw)
    argv_start = _SIZE + filename_len
    if argv_start + argv_len != size:
        raise MalformedRecord(
            f"exec record of {size} bytes does not hold its header, {filename_len} filename bytes "
            f"and {argv_len} argv bytes"
        )
    if argv_len > argv_size:
        raise MalformedRecord(f"exec record carries {argv_len} argv bytes of a {argv_size}-byte argv")
    ancestors = caches.ancestors(cgroup_id, (a0, a1, a2, a3, a4, a5, a6, a7))
    names = caches.names(raw[_NAMES])
    comm = caches.comm(raw[_COMM])
    raw_name = raw[_SIZE:argv_start]
    try:
        filename = raw_name.decode()
        bad = False
    except UnicodeDecodeError:
        filename, bad = raw_name.decode("utf-8", "backslashreplace"), True
    argv, bad_argv = argv_text(raw[argv_start:])
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
        bad or bad_argv,
        flags,
    )
