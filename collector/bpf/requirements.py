"""What a node must offer before the exec program can run, each with the fix when it does not.

`execlog check` prints all of them; `execlog run` stops at the first fatal one with its line.
scripts/check_btf.sh makes the same kernel and BTF checks without Python, on the node itself.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

from collector.bpf.libbpf import BPF_MAP_TYPE_RINGBUF, Libbpf, LibbpfError
from collector.bpf.program import privileged

__all__ = [
    "MIN_KERNEL",
    "Finding",
    "btf",
    "kernel",
    "preflight",
    "privileges",
    "ring_buffer",
    "tracefs",
]

MIN_KERNEL = (5, 8)
DEFAULT_BTF = Path("/sys/kernel/btf/vmlinux")


@dataclass(frozen=True, slots=True)
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    fatal: bool = True  # when not ok, the collector cannot run

    def line(self) -> str:
        status = "ok" if self.ok else ("FAIL" if self.fatal else "note")
        text = f"{status:<4}  {self.name:<12} {self.detail}"
        if not self.ok and self.fix:
            text += f"; fix: {self.fix}"
        return text


def kernel(release: str | None = None) -> Finding:
    release = release or os.uname().release
    m = re.match(r"(\d+)\.(\d+)", release)
    if not m:
        return Finding("kernel", False, f"cannot read a version from {release!r}", "run on Linux >= 5.8")
    version = (int(m.group(1)), int(m.group(2)))
    if version < MIN_KERNEL:
        return Finding(
            "kernel",
            False,
            f"Linux {release} is older than 5.8 (no BPF ring buffer, no CAP_BPF)",
            "schedule workspaces on nodes with kernel >= 5.8 (e.g. Ubuntu 20.04 HWE, Bottlerocket, COS 93+)",
        )
    return Finding("kernel", True, f"Linux {release} (>= 5.8)")


def btf(custom: Path | None = None) -> Finding:
    path = custom or DEFAULT_BTF
    if path.is_file() and os.access(path, os.R_OK):
        return Finding("btf", True, f"{path} readable")
    if custom is not None:
        return Finding("btf", False, f"BTF file {path} not found", "give --btf-path a readable BTF file")
    return Finding(
        "btf",
        False,
        f"kernel BTF {path} is missing",
        "use a kernel built with CONFIG_DEBUG_INFO_BTF=y, or pass --btf-path with a BTF file for this "
        "kernel (e.g. from BTFHub)",
    )


def privileges() -> Finding:
    if privileged():
        return Finding("privileges", True, "CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) held")
    return Finding(
        "privileges",
        False,
        "missing CAP_BPF and CAP_PERFMON",
        "run as root, or grant CAP_BPF, CAP_PERFMON (and CAP_SYS_RESOURCE on kernels < 5.11)",
    )


def ring_buffer(lib: Libbpf) -> Finding:
    ret = lib.libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, None)
    if ret == 1:
        return Finding("ring buffer", True, "BPF ring buffer maps supported")
    if ret == 0:
        return Finding("ring buffer", False, "the kernel has no BPF ring buffer", "use a kernel >= 5.8")
    return Finding(
        "ring buffer", False, f"cannot probe BPF ring buffer support: {lib.strerror(-ret)}", "run as root"
    )


def tracefs(proc_root: Path = Path("/proc")) -> Finding:
    try:
        mounts = (proc_root / "self" / "mounts").read_text(encoding="utf-8", errors="replace")
    except OSError:
        mounts = ""
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[2] == "tracefs":
            return Finding("tracefs", True, f"mounted at {parts[1]}", fatal=False)
    return Finding(
        "tracefs",
        False,
        "not mounted; only the classic tracepoint fallback needs it",
        "mount -t tracefs tracefs /sys/kernel/tracing",
        fatal=False,
    )


def preflight(btf_path: Path | None) -> list[Finding]:
    """The fatal checks that can be made before loading; the first failure stops `execlog run`."""
    return [kernel(), btf(btf_path), privileges()]


def load_error_fix(exc: LibbpfError) -> str:
    """A fix for the commonest load failures, which libbpf reports only as errno and log lines."""
    if exc.errno in (errno.EPERM, errno.EACCES) and not privileged():
        return "run as root, or grant CAP_BPF and CAP_PERFMON"
    said = " ".join(exc.libbpf_log)
    if "tracepoint" in said and exc.errno == errno.ENOENT:
        return "mount tracefs (mount -t tracefs tracefs /sys/kernel/tracing), or use --exec-hook tp_btf"
    return ""
