"""No outlet's failure stops the collector: a real `execlog run` whose stdout is a file on a tmpfs
that fills up, while a gRPC subscriber reads the same stream."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.hub import Gap, Item
from tests.support.build import execprobe
from tests.support.collector import RunningCollector
from tests.support.require import require_bpf
from tests.support.stream import StreamClient, argv1


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    require_bpf()
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "execlog-test", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(path: Path) -> None:
    """Write until the file system says it is full."""
    with path.open("wb", buffering=0) as f:
        for block in (1 << 16, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * block)


def storm(count: int, prefix: str) -> None:
    result = subprocess.run(
        [execprobe(), "storm", str(count), "/bin/true", prefix, "1"], capture_output=True, check=True
    )
    assert json.loads(result.stdout)["failed"] == 0


def test_a_full_disk_under_stdout_loses_counted_records_and_stops_nothing(
    small_disk: Path, tmp_path: Path
) -> None:
    sock_dir = Path(tempfile.mkdtemp(prefix="xl-full-"))
    sock = sock_dir / "s.sock"
    out = small_disk / "stdout.jsonl"
    c = RunningCollector(tmp_path, "--grpc-listen", f"unix://{sock}", out_path=out)
    client = StreamClient(f"unix://{sock}")
    reader = client.subscribe()
    try:
        storm(50, "before-full")
        fill(small_disk / "filler")
        storm(300, "while-full")
        # The gRPC stream serves the execs that stdout cannot take.
        reader.wait_for(
            lambda r: isinstance(r.entry, Item) and argv1(r.entry) == "while-full-299", timeout=30
        )
        deadline = time.monotonic() + 10
        while "stdout write failed" not in c.err_path.read_text():
            assert time.monotonic() < deadline, c.err_path.read_text()
            time.sleep(0.05)
        assert c.proc.poll() is None  # still running
        (small_disk / "filler").unlink()
        storm(50, "after-free")
        c.wait_for("after-free-49", timeout=30)
    finally:
        code = c.stop()
        client.close()
        shutil.rmtree(sock_dir, ignore_errors=True)
    assert code == 0, c.err_path.read_text()

    data = out.read_bytes()
    assert data.endswith(b"\n")
    docs = [json.loads(line) for line in data.splitlines()]  # each line whole
    gaps = [d["fields"] for d in docs if d["msg"] == "gap"]
    failed = [g for g in gaps if g["reason"] == "outlet_write_failed"]
    assert failed, "the loss must be said in the file once writing works again"
    in_gaps = {seq for g in gaps if "first_seq" in g for seq in range(g["first_seq"], g["last_seq"] + 1)}
    written = {d["fields"]["seq"]: d for d in docs if d["msg"] == "exec"}
    assert not in_gaps & set(written)
    # Every exec of the storms: on stdout, or inside a gap's seq range, by the seq gRPC gave it.
    by_tag = {
        argv1(r.entry): r.entry.seq
        for r in reader.received
        if isinstance(r.entry, Item) and not isinstance(r.entry.record, Gap)
    }
    tags = [f"before-full-{i}" for i in range(50)] + [f"while-full-{i}" for i in range(300)]
    tags += [f"after-free-{i}" for i in range(50)]
    assert set(tags) <= set(by_tag)
    assert all(by_tag[t] in written or by_tag[t] in in_gaps for t in tags)
    assert any(by_tag[t] in in_gaps for t in tags if t.startswith("while-full"))
    # The counts agree: the stop line's outlet losses are the gaps' sum (the subscriber lost none).
    lost = int(re.findall(r"outlet_lost=(\d+)", c.err_path.read_text())[-1])
    assert lost == sum(g["lost"] for g in gaps if g["reason"].startswith("outlet_"))
    assert not [r for r in reader.received if isinstance(r.entry, Gap)]
