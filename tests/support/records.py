"""Ring records built to the layouts of bpf/exec.h, for tests that need no kernel."""

from __future__ import annotations

from typing import Any, cast

from collector.event import ExecEvent, decode
from collector.event.kinds.exec import EXEC, KIND_EXEC
from collector.event.layout import ANCESTORS_MAX
from collector.k8s import Workload

__all__ = ["WORKLOAD", "event", "record"]


# A workspace container, for tests of what outlets make of an exec's workload.
WORKLOAD = Workload(
    node="node-1",
    namespace="coder",
    pod="ws-jessie-main",
    pod_uid="6a1f",
    container="dev",
    container_id="containerd://abc",
    nested_container_id="def",
    labels={"username": "jessie", "workspace_name": "main"},
    pod_labels={"app": "workspace", "com.coder.username": "jessie"},
)


def record(filename: bytes = b"/bin/true", argv: bytes = b"true\0", **fields: object) -> bytes:
    """A record as bpf/exec.bpf.c writes it; unset header fields get plausible values."""
    values: dict[str, object] = {
        "kind": KIND_EXEC,
        "flags": 0,
        "boot_ns": 5_000_000_123,
        "cgroup_id": 77,
        "ancestor_ids": (12, 1) + (0,) * (ANCESTORS_MAX - 2),
        "pid": 1234,
        "ppid": 1000,
        "uid": 1001,
        "gid": 1002,
        "euid": 1003,
        "egid": 1004,
        "pid_ns": 4026531836,
        "mnt_ns": 4026531832,
        "argc": argv.count(b"\0"),
        "argv_size": len(argv),
        "argv_len": len(argv),
        "filename_len": len(filename),
        "comm": b"bash",
        "cgroup_name": b"cri-containerd-abc.scope",
        "parent_cgroup_name": b"kubepods-pod1.slice",
        "_reserved": 0,
    }
    values.update(fields)
    flat: list[object] = []
    for name, _ in EXEC.fields:
        value = values[name]
        flat.extend(value if isinstance(value, tuple) else (value,))
    return EXEC.struct.pack(*flat) + filename + argv


def event(
    argv: list[str] | None = None, boot_to_unix_ns: int = 1_700_000_000_000_000_000, **fields: Any
) -> ExecEvent:
    """A decoded event; argv given as text."""
    args = ["true"] if argv is None else argv
    block = b"".join(a.encode() + b"\0" for a in args)
    return cast(ExecEvent, decode(record(argv=block, **fields), boot_to_unix_ns))
