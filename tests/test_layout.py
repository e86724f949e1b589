"""The Python mirror of struct execlog_event against the BTF of the built exec.bpf.o.

This needs no privileges: it reads the object file. When a field is added, moved or resized on
the C side only, this test fails before any record is misread.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from typing import Any

from collector.event.layout import FIELDS, HEADER
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


def btf_struct(name: str) -> tuple[int, list[tuple[str, int, int]]]:
    types = btf_types()
    (struct_type,) = [t for t in types.values() if t["kind"] == "STRUCT" and t["name"] == name]
    members = [
        (m["name"], m["bits_offset"] // 8, size_of(types, m["type_id"])) for m in struct_type["members"]
    ]
    return struct_type["size"], members


def python_layout() -> list[tuple[str, int, int]]:
    layout, offset = [], 0
    for name, code in FIELDS:
        size = struct.calcsize("<" + code)
        layout.append((name, offset, size))
        offset += size
    return layout


def test_header_matches_btf_of_the_built_object() -> None:
    size, members = btf_struct("execlog_event")
    assert members == python_layout()
    assert size == HEADER.size


def test_stats_counters_match_btf() -> None:
    size, members = btf_struct("execlog_stats")
    assert [name for name, _, _ in members] == ["seen", "lost", "comm_missing"]
    assert size == 24


def test_cgroup_filter_matches_btf() -> None:
    from collector.bpf.program import FILTER_MAX

    size, members = btf_struct("execlog_cgroup_filter")
    assert members == [("ids", 0, 8 * FILTER_MAX)]
    assert size == 8 * FILTER_MAX
