"""Every Python layout declaration against the BTF of the built exec.bpf.o.

This needs no privileges: it reads the object file. When a field is added, moved or resized on
the C side only, this test fails before any record is misread.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from typing import Any

import pytest

from collector.event import KINDS
from collector.event.layout import HEADER, Layout
from tests.support.require import REPO, require

OBJECT = REPO / "bpf" / "exec.bpf.o"


def btf_types() -> dict[int, dict[str, Any]]:
    require(shutil.which("bpftool") is not None, "needs bpftool (apt-get install bpftool)")
    require(OBJECT.is_file(), "needs bpf/exec.bpf.o (run `make install`)")
    out = subprocess.run(
        ["bpftool", "-j", "btf", "dump", "file", str(OBJECT)], check=True, capture_output=True, text=True
    ).stdout
    return {t["id"]: t for t in json.loads(out)["types"]}


def size_of(types: dict[int, dict[str, Any]], type_id: int) -> int:
    t = types[type_id]
    if t["kind"] in ("INT", "STRUCT", "UNION", "ENUM"):
        return int(t["size"])
    if t["kind"] == "ARRAY":
        return int(t["nr_elems"]) * size_of(types, t["type_id"])
    if t["kind"] in ("TYPEDEF", "CONST", "VOLATILE"):
        return size_of(types, t["type_id"])
    raise AssertionError(f"unexpected BTF kind {t['kind']}")


def members_of(
    types: dict[int, dict[str, Any]], struct_type: dict[str, Any], base: int
) -> list[tuple[str, int, int]]:
    """The struct's members as (name, offset, size), a nested struct's members in its place."""
    out: list[tuple[str, int, int]] = []
    for m in struct_type["members"]:
        offset = base + m["bits_offset"] // 8
        member_type = types[m["type_id"]]
        if member_type["kind"] == "STRUCT":
            out.extend(members_of(types, member_type, offset))
        else:
            out.append((m["name"], offset, size_of(types, m["type_id"])))
    return out


def btf_struct(name: str) -> tuple[int, list[tuple[str, int, int]]]:
    types = btf_types()
    (struct_type,) = [t for t in types.values() if t["kind"] == "STRUCT" and t["name"] == name]
    return struct_type["size"], members_of(types, struct_type, 0)


def python_layout(layout: Layout) -> list[tuple[str, int, int]]:
    out, offset = [], 0
    for name, code in layout.fields:
        size = struct.calcsize("<" + code)
        out.append((name, offset, size))
        offset += size
    return out


@pytest.mark.parametrize("layout", [HEADER, *(k.layout for k in KINDS)], ids=lambda layout: layout.c_name)
def test_each_layout_matches_btf_of_the_built_object(layout: Layout) -> None:
    size, members = btf_struct(layout.c_name)
    assert members == python_layout(layout)
    assert size == layout.size


def test_every_kind_starts_with_the_header_and_has_its_own_number() -> None:
    for kind in KINDS:
        assert kind.layout.fields[: len(HEADER.fields)] == HEADER.fields
    assert len({k.number for k in KINDS}) == len(KINDS)


def test_stats_counters_match_btf() -> None:
    size, members = btf_struct("execlog_stats")
    assert [name for name, _, _ in members] == ["seen", "lost", "comm_missing"]
    assert size == 24


def test_cgroup_filter_matches_btf() -> None:
    from collector.bpf.program import FILTER_MAX

    size, members = btf_struct("execlog_cgroup_filter")
    assert members == [("ids", 0, 8 * FILTER_MAX)]
    assert size == 8 * FILTER_MAX
