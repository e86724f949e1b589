"""The record kinds: one module per kind declares its layout, its event type and its decoder.

A new kind is a module here and one line in KINDS, beside its struct in bpf/exec.h; the decoder
dispatches on the header's `kind` through this table, and tests/test_layout.py checks every
layout listed in it against the BTF of exec.bpf.o.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from collector.event.kinds.exec import EXEC, KIND_EXEC, ExecEvent, decode_exec
from collector.event.layout import Layout
from collector.event.parts import Caches

__all__ = ["KINDS", "Kind", "ProcessEvent"]


class ProcessEvent(Protocol):
    """What every kind tells about the process it is about: enough to attribute it to a pod and
    to apply policy to it."""

    @property
    def time_ns(self) -> int: ...  # wall clock (Unix epoch, ns) of the event

    @property
    def boot_ns(self) -> int: ...  # CLOCK_BOOTTIME of the event, as the kernel stamped it

    @property
    def pid(self) -> int: ...

    @property
    def uid(self) -> int: ...

    @property
    def comm(self) -> str: ...

    @property
    def cgroup_id(self) -> int: ...

    @property
    def cgroup_ancestors(self) -> tuple[int, ...]: ...

    @property
    def cgroup_name(self) -> str: ...

    @property
    def parent_cgroup_name(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Kind:
    number: int  # execlog_header.kind
    layout: Layout
    event: type[Any]
    decode: Callable[[Caches, bytes, int], Any]  # (caches, record, boot-to-Unix offset) -> event


KINDS: tuple[Kind, ...] = (Kind(KIND_EXEC, EXEC, ExecEvent, decode_exec),)
