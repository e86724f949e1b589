"""How a ring record's bytes are declared: one `Layout` per C struct of bpf/exec.h.

A layout is the struct's fields in order, each with its `struct` code. Everything else (the
precompiled `struct.Struct`, each field's offset, the slices a decoder takes) is derived from
that one declaration, and tests/test_layout.py compares every declared layout with the BTF of
the built exec.bpf.o, so a field added or moved on one side only fails a test before any record
is misread. Fields of a nested struct (the common header) are declared flat, by their own names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from struct import Struct, calcsize
from typing import Final

__all__ = [
    "ANCESTORS_MAX",
    "ARGV_CAP_MAX",
    "CGROUP_NAME_LEN",
    "COMM_LEN",
    "HEADER",
    "Layout",
]

COMM_LEN: Final = 16
CGROUP_NAME_LEN: Final = 128
ANCESTORS_MAX: Final = 8
ARGV_CAP_MAX: Final = 1 << 17


@dataclass(frozen=True, slots=True)
class Layout:
    """A C struct as (field name, struct code) pairs; little-endian, no hidden padding."""

    c_name: str  # the struct's name in bpf/exec.h, without `struct`
    fields: tuple[tuple[str, str], ...]
    struct: Struct = field(init=False, repr=False, compare=False)
    offsets: dict[str, tuple[int, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        offsets: dict[str, tuple[int, int]] = {}
        at = 0
        for name, code in self.fields:
            size = calcsize("<" + code)
            offsets[name] = (at, size)
            at += size
        object.__setattr__(self, "struct", Struct("<" + "".join(c for _, c in self.fields)))
        object.__setattr__(self, "offsets", offsets)

    @property
    def size(self) -> int:
        return self.struct.size

    def offset(self, name: str) -> int:
        return self.offsets[name][0]

    def span(self, first: str, last: str | None = None) -> slice:
        """The bytes of field `first` through field `last` (default: `first` alone)."""
        start = self.offsets[first][0]
        end_at, end_size = self.offsets[last or first]
        return slice(start, end_at + end_size)

    def prefix(self, before: str) -> Struct:
        """A Struct of the fields before `before`: to unpack the numbers and slice the rest."""
        codes: list[str] = []
        for name, code in self.fields:
            if name == before:
                return Struct("<" + "".join(codes))
            codes.append(code)
        raise KeyError(before)


# struct execlog_header: the start of every record. `kind` says which layout follows.
HEADER: Final = Layout(
    "execlog_header",
    (
        ("kind", "H"),
        ("flags", "H"),
        ("pid", "I"),
        ("boot_ns", "Q"),
    ),
)
