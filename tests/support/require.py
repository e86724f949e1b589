"""What a test needs from the machine, and what happens when the machine lacks it.

By hand, a test whose needs are unmet is skipped with its reason. In CI, EXECLOG_REQUIRE_BPF=1
turns that skip into a failure, so a machine that quietly lost BPF or runc cannot pass.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

__all__ = ["REPO", "require", "require_bpf", "require_root", "require_runc", "strict"]

REPO = Path(__file__).resolve().parents[2]


def strict() -> bool:
    return os.environ.get("EXECLOG_REQUIRE_BPF") == "1"


def require(condition: bool, reason: str) -> None:
    if condition:
        return
    if strict():
        pytest.fail(f"EXECLOG_REQUIRE_BPF=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def require_root() -> None:
    require(os.geteuid() == 0, "needs root")


def require_bpf() -> None:
    require_root()
    require(Path("/sys/kernel/btf/vmlinux").is_file(), "needs kernel BTF at /sys/kernel/btf/vmlinux")
    require((REPO / "bpf" / "exec.bpf.o").is_file(), "needs bpf/exec.bpf.o (run `make install`)")


def require_runc() -> None:
    require_root()
    require(shutil.which("runc") is not None, "needs runc (apt-get install runc)")
    require(Path("/bin/busybox").is_file(), "needs busybox-static (apt-get install busybox-static)")
