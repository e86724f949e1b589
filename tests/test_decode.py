"""The decoder on golden bytes from the kernel and on records built to the layout."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.event import Decoder, ExecEvent, MalformedRecord, split_argv, text
from collector.event import decode as decode_any
from collector.event.kinds.exec import EXEC, FLAG_ARGC_UNKNOWN, FLAG_ARGV_TRUNCATED, KIND_EXEC
from collector.event.layout import HEADER
from tests.support.records import record

GOLDEN = Path(__file__).parent / "fixtures" / "exec_record.bin"


def decode(raw: bytes, boot_to_unix_ns: int) -> ExecEvent:
    event = decode_any(raw, boot_to_unix_ns)
    assert isinstance(event, ExecEvent)
    return event


def test_golden_record_from_the_kernel() -> None:
    # Captured from the real program: /bin/echo golden '' ' ' café $'\xff\xfe' x*40, argv cap 64,
    # in a cgroup named as a container's.
    event = decode(GOLDEN.read_bytes(), boot_to_unix_ns=1_000)
    assert event.filename == "/bin/echo"
    assert event.argv == ["/bin/echo", "golden", "", " ", "café", "\\xff\\xfe", "x" * 35]
    assert event.argc == 7
    assert event.argv_size == 70
    assert event.truncated
    assert event.non_utf8
    assert event.comm == "python"
    assert event.cgroup_name == "54501021c727a426dff3ac0a59aa506a"
    assert event.parent_cgroup_name == "execlog-golden-46ddfb"
    assert event.cgroup_id == 8846
    assert event.cgroup_ancestors == (8813, 1)
    assert (event.pid, event.ppid, event.uid, event.gid) == (6611, 6609, 0, 0)
    assert event.time_ns == event.boot_ns + 1_000


def test_header_fields_land_where_the_layout_says() -> None:
    event = decode(record(), boot_to_unix_ns=10)
    assert event.time_ns == 5_000_000_133
    assert (event.pid, event.ppid, event.uid, event.gid, event.euid, event.egid) == (
        1234,
        1000,
        1001,
        1002,
        1003,
        1004,
    )
    assert (event.pid_ns, event.mnt_ns, event.cgroup_id) == (4026531836, 4026531832, 77)
    assert event.cgroup_ancestors == (12, 1)
    assert event.comm == "bash"
    assert event.cgroup_name == "cri-containerd-abc.scope"
    assert event.parent_cgroup_name == "kubepods-pod1.slice"
    assert event.filename == "/bin/true"
    assert event.argv == ["true"]
    assert not event.truncated
    assert not event.non_utf8


@pytest.mark.parametrize(
    ("block", "argv"),
    [
        (b"", []),
        (b"\0", [""]),
        (b"a\0\0b\0", ["a", "", "b"]),
        (b"a\0 \0\0", ["a", " ", ""]),
        (b"a\0bc", ["a", "bc"]),  # cut inside the last argument
    ],
)
def test_empty_blank_and_cut_arguments_are_kept(block: bytes, argv: list[str]) -> None:
    assert decode(record(argv=block), 0).argv == argv


def test_truncated_record_keeps_true_sizes() -> None:
    event = decode(record(argv=b"ls\0-l", argc=5, argv_size=4000, flags=FLAG_ARGV_TRUNCATED), 0)
    assert event.truncated
    assert event.argv == ["ls", "-l"]
    assert (event.argc, event.argv_size) == (5, 4000)


def test_unknown_argc_is_counted_from_the_arguments() -> None:
    assert decode(record(argv=b"a\0b\0c\0", argc=0, flags=FLAG_ARGC_UNKNOWN), 0).argc == 3


def test_non_utf8_bytes_become_escapes_and_are_flagged() -> None:
    event = decode(record(filename=b"/tmp/\xff", argv=b"caf\xc3\xa9\0\x80x\0"), 0)
    assert event.argv == ["café", "\\x80x"]
    assert event.filename == "/tmp/\\xff"
    assert event.non_utf8


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\0" * (HEADER.size - 1),
        b"\0" * EXEC.size,  # kind 0: no such kind
        record()[: EXEC.size - 1],  # an exec header cut short
        record()[:-1],  # argv shorter than argv_len says
        record() + b"x",  # trailing bytes
        record(argv=b"abc\0", argv_size=2),  # carries more than the true size
    ],
)
def test_malformed_records_raise_malformed_record(raw: bytes) -> None:
    with pytest.raises(MalformedRecord):
        decode(raw, 0)


no_nul = st.binary(max_size=40).filter(lambda b: b"\0" not in b)


@given(st.lists(no_nul, max_size=20))
def test_any_argv_round_trips(args: list[bytes]) -> None:
    block = b"".join(a + b"\0" for a in args)
    event = decode(record(argv=block), 0)
    assert event.argv == [text(a)[0] for a in args]
    assert event.argc == len(args)
    assert event.non_utf8 == any(text(a)[1] for a in args)


@given(st.binary(max_size=EXEC.size + 64))
def test_arbitrary_bytes_never_raise_anything_but_malformed(raw: bytes) -> None:
    with contextlib.suppress(MalformedRecord):
        decode_any(raw, 0)


@given(st.binary(min_size=EXEC.size - 2, max_size=EXEC.size + 64))
def test_arbitrary_exec_records_never_raise_anything_but_malformed(body: bytes) -> None:
    with contextlib.suppress(MalformedRecord):
        decode_any(KIND_EXEC.to_bytes(2, "little") + body, 0)


def test_split_argv_matches_decoder() -> None:
    assert split_argv(b"a\0\0b\0") == [b"a", b"", b"b"]
    assert split_argv(b"a\0b") == [b"a", b"b"]
    assert split_argv(b"") == []


def test_cached_decoder_matches_the_pure_one() -> None:
    decoder = Decoder(cache_size=2)
    records = [
        record(argv=b"a\0", cgroup_id=1, cgroup_name=b"one", comm=b"x"),
        record(argv=b"b\0", cgroup_id=2, cgroup_name=b"two", comm=b"y", ancestor_ids=(5,) + (0,) * 7),
        record(argv=b"c\0", cgroup_id=1, cgroup_name=b"one", comm=b"x"),
        record(argv=b"d\0", cgroup_id=3, cgroup_name=b"three", comm=b"z", ancestor_ids=tuple(range(1, 9))),
        record(argv=b"e\0", cgroup_id=2, cgroup_name=b"two", comm=b"y", ancestor_ids=(5,) + (0,) * 7),
    ]
    for raw in records * 3:  # more entries than the cache holds: it must clear, not grow
        assert decoder.decode(raw, 7) == decode(raw, 7)
