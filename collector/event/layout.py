"""The byte layout of one ring-buffer record, mirrored from bpf/exec.h.

    offset  size  field
         0     8  boot_ns             u64  bpf_ktime_get_boot_ns() at the exec
         8     8  cgroup_id           u64  kernfs id (inode) of the task's cgroup
        16    64  ancestor_ids[8]     u64  parent first, towards the root; 0 = none
        80     4  pid                 u32  tgid after the exec
        84     4  ppid                u32
        88     4  uid, gid, euid, egid (4 x u32)
       104     4  pid_ns, mnt_ns      (2 x u32) namespace inodes
       112     4  argc                u32  true argc
       116     4  argv_size           u32  true byte length of argv
       120     4  argv_len            u32  argv bytes carried
       124     2  filename_len        u16  filename bytes carried, no NUL
       126     2  flags               u16  FLAG_* below
       128    16  comm                     caller's comm before the exec, NUL-padded
       144   128  cgroup_name
       272   128  parent_cgroup_name
       400     -  filename bytes, then argv bytes (NUL after each argument)

tests/test_layout.py checks this table against the BTF of the built exec.bpf.o.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = [
    "ANCESTORS_MAX",
    "ARGV_CAP_MAX",
    "CGROUP_NAME_LEN",
    "COMM_LEN",
    "FIELDS",
    "FLAG_ANCESTORS_TRUNCATED",
    "FLAG_ARGC_UNKNOWN",
    "FLAG_ARGV_TRUNCATED",
    "FLAG_ARGV_UNREADABLE",
    "FLAG_CGROUP_NAME_TRUNCATED",
    "FLAG_COMM_AFTER_EXEC",
    "FLAG_PARENT_CGROUP_NAME_TRUNCATED",
    "HEADER",
]

COMM_LEN: Final = 16
CGROUP_NAME_LEN: Final = 128
ANCESTORS_MAX: Final = 8
ARGV_CAP_MAX: Final = 1 << 17

FLAG_ARGV_TRUNCATED: Final = 1 << 0
FLAG_ARGV_UNREADABLE: Final = 1 << 1
FLAG_ARGC_UNKNOWN: Final = 1 << 2
FLAG_COMM_AFTER_EXEC: Final = 1 << 3
FLAG_CGROUP_NAME_TRUNCATED: Final = 1 << 4
FLAG_PARENT_CGROUP_NAME_TRUNCATED: Final = 1 << 5
FLAG_ANCESTORS_TRUNCATED: Final = 1 << 6

# Field name, struct code. The names are those of struct execlog_event in bpf/exec.h.
FIELDS: Final[tuple[tuple[str, str], ...]] = (
    ("boot_ns", "Q"),
    ("cgroup_id", "Q"),
    ("ancestor_ids", f"{ANCESTORS_MAX}Q"),
    ("pid", "I"),
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
    ("filename_len", "H"),
    ("flags", "H"),
    ("comm", f"{COMM_LEN}s"),
    ("cgroup_name", f"{CGROUP_NAME_LEN}s"),
    ("parent_cgroup_name", f"{CGROUP_NAME_LEN}s"),
)

HEADER: Final = struct.Struct("<" + "".join(code for _, code in FIELDS))
