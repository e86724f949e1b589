"""The gRPC stream, metrics and `execlog tail` against a real `execlog run`: real execs, a real
BPF program, real sockets. The collector runs standalone, so it also sees the host's other execs;
tests count their own tagged execs by tag and account for every seq."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector._proto.execlog.v1 import execlog_pb2 as pb
from collector.hub import RESUME_POINT_LOST, SUBSCRIBER_TOO_SLOW, Gap, Item
from tests.support.build import execprobe
from tests.support.collector import EXECLOG, RunningCollector, start
from tests.support.require import REPO
from tests.support.stream import Reader, Received, StreamClient, argv1, gap_of


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="xl-cli-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def logged(c: RunningCollector, pattern: str) -> str:
    found = re.search(pattern, c.err_path.read_text())
    assert found, c.err_path.read_text()
    return found.group(1)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def storm(count: int, prefix: str) -> None:
    result = subprocess.run(
        [execprobe(), "storm", str(count), "/bin/true", prefix, "2"], capture_output=True, check=True
    )
    assert json.loads(result.stdout)["failed"] == 0


def storm_seqs(c: RunningCollector, prefix: str) -> dict[str, int]:
    """tag -> seq, from the collector's stdout: the reference for what every outlet should have."""
    return {
        doc["fields"]["event"]["argv"][1]: doc["fields"]["seq"]
        for doc in c.lines()
        if doc["msg"] == "exec"
        and doc["fields"]["event"]["argv"][1:2]
        and doc["fields"]["event"]["argv"][1].startswith(prefix)
    }


def accounted(reader: Reader, seqs: set[int]) -> tuple[set[int], set[int]]:
    """Of `seqs`: those the reader got, and those inside one of its gaps."""
    got = {i.seq for i in reader.execs()} & seqs
    in_gaps: set[int] = set()
    for received in reader.gaps():
        gap = gap_of(received)
        if gap.first_seq is not None and gap.last_seq is not None:
            in_gaps |= set(range(gap.first_seq, gap.last_seq + 1)) & seqs
    return got, in_gaps


def test_storm_with_slow_and_stuck_subscribers_and_the_metrics_that_count_it(
    collector: list[RunningCollector], tmp_path: Path, sock_dir: Path
) -> None:
    target = f"unix://{sock_dir}/grpc.sock"
    c = start(
        collector, tmp_path, "--grpc-listen", target, "--grpc-subscriber-queue", "2000",
        "--metrics-listen", "127.0.0.1:0",
    )  # fmt: skip
    url = "http://" + logged(c, r"metrics at http://(\S+)/metrics") + "/metrics"
    # Readers that keep up, as a SIEM would: in batches, one of them filtered to the storm.
    fast = [
        StreamClient(target).subscribe(pb.SubscribeRequest(client_name="fast0", max_batch=256)),
        StreamClient(target).subscribe(
            pb.SubscribeRequest(
                client_name="fast1", max_batch=256, allow=[pb.Filter(binary_prefixes=["/bin/true"])]
            )
        ),
    ]
    # Neither grows its flow-control window, so their queues, not their sockets, take the storm.
    slow = StreamClient(target, **{"grpc.http2.bdp_probe": 0}).subscribe(
        pb.SubscribeRequest(client_name="slow"), start=False
    )
    slow.start(delay=0.005)
    stuck = StreamClient(target, **{"grpc.http2.bdp_probe": 0}).subscribe(
        pb.SubscribeRequest(client_name="stuck"), start=False
    )
    stuck.call.initial_metadata()
    for reader in (*fast, slow):
        reader.wait_for(lambda r: True)
    deadline = time.monotonic() + 10
    while scrape(url)[("execlog_subscribers", ())] < 4:
        assert time.monotonic() < deadline, "subscribers did not register"
        time.sleep(0.05)

    count, tag = 6000, f"gstorm{c.proc.pid}"
    storm(count, tag)
    prefix = tag + "-"  # execprobe's storm tags are TAG-0, TAG-1, ...
    c.wait_for(f"{prefix}{count - 1}", timeout=30)
    time.sleep(0.5)  # the last records of the storm reach stdout together with the rest
    seqs = storm_seqs(c, prefix)
    assert len(seqs) == count  # stdout keeps everything
    last = max(seqs.values())
    for reader in fast:  # and so does every subscriber that reads
        reader.wait_for(lambda r: isinstance(r.entry, Item) and r.entry.seq >= last)
        assert set(seqs) <= {argv1(i) for i in reader.execs()}
        assert [g for g in reader.gaps() if gap_of(g).reason == SUBSCRIBER_TOO_SLOW] == []

    during = scrape(url)
    assert during[("execlog_kernel_execs_seen_total", ())] >= count
    assert during[("execlog_subscribers", ())] == 4
    for reason in ("outlet_queue_full", "outlet_write_failed"):
        assert during[("execlog_outlet_lost_records_total", (("outlet", "jsonlog"), ("reason", reason)))] == 0
    assert during[("execlog_ring_fill_ratio", ())] <= 1

    # Let the slow and the stuck one catch up; then each loss they were told of is counted.
    slow.delay = 0
    stuck.start()

    def reached_last(r: Received) -> bool:
        # the storm's last record itself, or the gap a stuck reader gets in its place; nothing
        # may follow the storm on a quiet machine
        entry = r.entry
        if isinstance(entry, Gap):
            return (entry.last_seq or 0) >= last
        return getattr(entry, "seq", 0) >= last

    for reader in (slow, stuck):
        reader.wait_for(reached_last, timeout=60)
    after = scrape(url)
    losses = {}
    for name, reader in (("slow", slow), ("stuck", stuck)):
        lost = [
            value
            for (metric, labels), value in after.items()
            if metric == "execlog_subscriber_lost_records_total" and ("subscriber", name) in labels
        ]
        told = sum(gap_of(g).lost for g in reader.gaps() if gap_of(g).reason == SUBSCRIBER_TOO_SLOW)
        assert lost == [told], name
        assert told > 0, f"{name} lost nothing: the test did not test"
        got, in_gaps = accounted(reader, set(seqs.values()))
        assert got | in_gaps == set(seqs.values()), name  # every storm exec: received or in a gap
        assert not got & in_gaps, name
        losses[name] = told
    grpc_lost = after[
        ("execlog_outlet_lost_records_total", (("outlet", "grpc"), ("reason", "subscriber_too_slow")))
    ]
    assert grpc_lost == sum(losses.values())  # the fast subscribers lost nothing

    assert c.stop() == 0
    for reader in (*fast, slow, stuck):
        reader.wait_end()
        assert reader.error is None  # the collector ended every stream cleanly


class Tail:
    def __init__(self, tmp_path: Path, name: str, *flags: str) -> None:
        self.out = tmp_path / f"{name}.out"
        self.err = tmp_path / f"{name}.err"
        self._files = (self.out.open("wb"), self.err.open("wb"))
        self.proc = subprocess.Popen(
            [*EXECLOG, "tail", *flags], stdout=self._files[0], stderr=self._files[1], cwd=REPO
        )

    def wait(self, check: Any, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not check(self):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(
                    f"tail: no {what}\nstdout:\n{self.out.read_text()}\nstderr:\n{self.err.read_text()}"
                )
            time.sleep(0.05)

    def json(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.read_bytes().splitlines()]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(20)
        for f in self._files:
            f.close()
        return code


def tail_tags(tail: Tail, prefix: str) -> dict[str, str]:
    """tag -> stream_id, from a JSON tail."""
    return {
        d["fields"]["event"]["argv"][1]: d["fields"]["stream_id"]
        for d in tail.json()
        if d["msg"] == "exec"
        and d["fields"]["event"]["argv"][1:2]
        and d["fields"]["event"]["argv"][1].startswith(prefix)
    }


def test_tail_follows_live_and_resumes_across_a_collector_restart(
    collector: list[RunningCollector], tmp_path: Path, sock_dir: Path
) -> None:
    target = f"unix://{sock_dir}/grpc.sock"
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = start(collector, tmp_path / "one", "--grpc-listen", target)
    first_stream = logged(first, r"execlog running: stream (\S+),")
    as_json = Tail(tmp_path, "json", target, "-o", "json", "--binary-prefix", "/bin/true")
    compact = Tail(
        tmp_path, "compact", target, "--binary-prefix", "/bin/true", "--deny-binary-prefix", "/bin/false"
    )
    try:
        for t in (as_json, compact):
            t.wait(lambda t: "following" in t.err.read_text(), "connection notice")
        storm(20, f"tailA{first.proc.pid}")
        before = f"tailA{first.proc.pid}-"
        as_json.wait(lambda t: len(tail_tags(t, before)) == 20, "execs of the first run")
        compact.wait(lambda t: t.out.read_text().count(before) == 20, "compact lines")
        line = next(x for x in compact.out.read_text().splitlines() if f"{before}7" in x.split())
        assert re.fullmatch(rf"\d\d:\d\d:\d\d\.\d{{3}} \S+ uid=0 pid=\d+ /bin/true {before}7", line), line
        assert set(tail_tags(as_json, before).values()) == {first_stream}

        assert first.stop() == 0  # the stream ends; tail keeps trying
        for t in (as_json, compact):
            t.wait(lambda t: "reconnecting" in t.err.read_text(), "reconnect notice")
        second = start(collector, tmp_path / "two", "--grpc-listen", target)
        second_stream = logged(second, r"execlog running: stream (\S+),")
        storm(20, f"tailB{second.proc.pid}")
        after = f"tailB{second.proc.pid}-"
        as_json.wait(lambda t: len(tail_tags(t, after)) == 20, "execs of the second run")
        compact.wait(lambda t: t.out.read_text().count(after) == 20, "compact lines after the restart")
    finally:
        codes = [t.stop() for t in (as_json, compact)]
    assert codes == [0, 0]
    docs = as_json.json()
    assert set(tail_tags(as_json, after).values()) == {second_stream} != {first_stream}
    gaps = [d for d in docs if d["msg"] == "gap"]
    # The restart is a new stream: the old one's rest is a gap of unknown size, then the new
    # stream from its start (the replay still held it, so nothing of the second run is missing).
    assert gaps[0]["fields"]["reason"] == RESUME_POINT_LOST
    assert gaps[0]["fields"]["stream_id"] == first_stream
    assert len(tail_tags(as_json, before)) == 20  # nothing twice
    errors = compact.err.read_text()
    assert "gap: an unknown number of records lost (resume_point_lost" in errors
    assert "Traceback" not in errors + as_json.err.read_text()
