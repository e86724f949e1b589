"""Policy on real execs: secrets never reach an outlet, a storm under a rate limit is accounted for
exactly, and exclusions drop and count. Execs run in a private cgroup, so counts are exact."""

from __future__ import annotations

import json
import math
import secrets
import string
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collector.config import PolicyConfig
from collector.engine import Pipeline
from collector.hub import Hub, Item
from collector.k8s import ProcessRecord
from collector.policy import MASK, build_policy
from collector.policy.exclude import Exclusion
from tests.support.build import execprobe
from tests.support.collector import RunningCollector, start
from tests.support.stream import StreamClient

if TYPE_CHECKING:  # a name starting with Test in this module would be collected as a test class
    from tests.integration.conftest import Capture, TestCgroup


def secret() -> str:
    return "s" + secrets.token_hex(12)


def github_token() -> str:
    return "ghp_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))


class Secrets:
    """Command lines with secrets in every place the rules look, and the secrets themselves."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.values = [secret() for _ in range(5)] + [github_token()]
        s1, s2, s3, s4, s5, gh = self.values
        self.commands = [
            ["/bin/true", "--password", s1, tag],
            ["/usr/bin/env", f"AWS_SECRET_ACCESS_KEY={s2}", "/bin/true", tag],
            ["/bin/sh", "-c", f"/bin/true --token={s3} {tag}; /bin/true 'Authorization: Bearer {s4}' {tag}"],
            ["/bin/true", f"https://bob:{s5}@example.com/x", gh, tag],
        ]
        # execs per command: true; env and true; sh and two trues; true
        self.execs = 1 + 2 + 3 + 1

    def run(self, cgroup: TestCgroup) -> None:
        for command in self.commands:
            subprocess.run(command, preexec_fn=cgroup.join, check=True)

    def assert_absent(self, data: str | bytes) -> None:
        text = data.decode(errors="replace") if isinstance(data, bytes) else data
        for value in self.values:
            assert value not in text


def lines_of(c: RunningCollector, cgroup_id: int) -> list[dict[str, Any]]:
    def cgroup_of(doc: dict[str, Any]) -> int | None:
        fields = doc["fields"]
        return fields["event"]["cgroup_id"] if doc["msg"] == "exec" else fields.get("cgroup_id")

    return [doc for doc in c.lines() if cgroup_of(doc) == cgroup_id]


def test_secrets_never_reach_stdout_or_a_grpc_subscriber(
    collector: list[RunningCollector], tmp_path: Path, test_cgroup: TestCgroup
) -> None:
    target = f"unix://{tempfile.mkdtemp(prefix='execlog-')}/grpc.sock"  # short: sun_path limit
    c = start(collector, tmp_path, "--grpc-listen", target)
    client = StreamClient(target)
    reader = client.subscribe()
    reader.wait_for(lambda r: True)  # subscribed: a checkpoint comes first
    cmds = Secrets(f"redact-{secrets.token_hex(4)}")
    cmds.run(test_cgroup)
    deadline = time.monotonic() + 10
    while len(lines_of(c, test_cgroup.id)) < cmds.execs and time.monotonic() < deadline:
        time.sleep(0.05)

    def ours() -> list[Item]:
        return [i for i in reader.execs() if i.record.event.cgroup_id == test_cgroup.id]

    deadline = time.monotonic() + 10
    while len(ours()) < cmds.execs and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(ours()) == cmds.execs  # the subscriber got every one of them...
    assert sum(MASK in " ".join(i.record.event.argv) for i in ours()) == cmds.execs - 1  # all but env's child
    for raw in reader.raw:  # ...and no secret in any byte it was sent
        cmds.assert_absent(raw)
    client.close()
    assert c.stop() == 0
    cmds.assert_absent(c.out_path.read_bytes())
    cmds.assert_absent(c.err_path.read_bytes())
    docs = lines_of(c, test_cgroup.id)
    assert len(docs) == cmds.execs
    by_argv0 = {}
    for doc in docs:
        fields = doc["fields"]
        assert fields["cmdline"] == " ".join(fields["event"]["argv"])  # rebuilt from the masked argv
        by_argv0.setdefault(fields["event"]["argv"][0], []).append(fields)
    env = by_argv0["/usr/bin/env"][0]
    assert env["event"]["argv"] == ["/usr/bin/env", f"AWS_SECRET_ACCESS_KEY={MASK}", "/bin/true", cmds.tag]
    assert env["redacted"] == ["secret-assignment"]
    sh = by_argv0["/bin/sh"][0]
    assert sh["event"]["argv"][2] == (
        f"/bin/true --token={MASK} {cmds.tag}; /bin/true 'Authorization: Bearer {MASK}' {cmds.tag}"
    )
    assert set(sh["redacted"]) == {"secret-flag", "auth-header"}
    trues = {tuple(f["event"]["argv"]): f.get("redacted") for f in by_argv0["/bin/true"]}
    s5 = f"https://bob:{MASK}@example.com/x"
    assert trues == {
        ("/bin/true", "--password", MASK, cmds.tag): ["secret-flag"],
        ("/bin/true", cmds.tag): None,  # env's child: the environment is not logged
        ("/bin/true", f"--token={MASK}", cmds.tag): ["secret-flag"],
        ("/bin/true", f"Authorization: Bearer {MASK}", cmds.tag): ["auth-header"],
        ("/bin/true", s5, MASK, cmds.tag): ["url-credentials", "github-token"],
    }


class Capturing:
    """An outlet that keeps everything the hub hands it."""

    name = "capturing"

    def __init__(self) -> None:
        self.items: list[Item] = []

    def publish(self, items: Sequence[Item]) -> None:
        self.items.extend(items)

    def close(self, timeout: float) -> None:
        pass


def pipeline_for(config: PolicyConfig) -> tuple[Pipeline, Capturing]:
    outlet = Capturing()
    policy = build_policy(config)
    return Pipeline(Hub([outlet]), policy=policy), outlet


def feed(pipeline: Pipeline, capture: Capture, until: int, outlet: Capturing) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pipeline.process(capture.program.read(50))
        if sum(isinstance(i.record, ProcessRecord) for i in outlet.items) >= until:
            break
    pipeline.process(capture.program.read(0))
    pipeline.tick(final=True)


def test_the_hub_and_every_item_it_publishes_carry_only_masked_argv(capture: Capture) -> None:
    pipeline, outlet = pipeline_for(PolicyConfig())
    cmds = Secrets(f"hub-{secrets.token_hex(4)}")
    cmds.run(capture.cgroup)
    feed(pipeline, capture, cmds.execs, outlet)
    records = [item.record for item in outlet.items]
    assert len(records) == cmds.execs and all(isinstance(r, ProcessRecord) for r in records)
    for item in outlet.items:
        cmds.assert_absent(repr(item))  # every field, the event inside the record included
    masked = [r for r in records if isinstance(r, ProcessRecord) and r.redactions]
    assert len(masked) == 6  # all but env's child
    assert all(MASK in " ".join(r.event.argv) for r in masked)
    assert pipeline.policy.counters.redacted_execs == 6  # type: ignore[attr-defined]


def test_exclusions_drop_and_count_real_execs_per_rule(capture: Capture) -> None:
    rules = (
        Exclusion("true", ("/bin/true", "/usr/bin/true")),
        Exclusion("probes", ("*/execprobe",)),
    )
    pipeline, outlet = pipeline_for(PolicyConfig(exclusions=rules))
    probe = execprobe()
    for i in range(5):
        capture.run(["/bin/true", f"x{i}"])
        capture.run(["/bin/echo", f"y{i}"])
    capture.run([probe, "execve", "/bin/echo", "echo", "from-probe"])
    feed(pipeline, capture, 6, outlet)
    argvs = [r.event.argv for r in (i.record for i in outlet.items) if isinstance(r, ProcessRecord)]
    assert sorted(argvs) == sorted([["/bin/echo", f"y{i}"] for i in range(5)] + [["echo", "from-probe"]])
    counters = pipeline.policy.counters  # type: ignore[attr-defined]
    assert counters.excluded == {"true": 5, "probes": 1}
    assert counters.captured == 12 == counters.logged + sum(counters.excluded.values())


def test_a_storm_under_a_rate_limit_is_accounted_for_exactly(
    collector: list[RunningCollector], tmp_path: Path, test_cgroup: TestCgroup
) -> None:
    rate, burst, every = 50, 20, 0.5
    flags = (
        "--rate-limit",
        str(rate),
        "--rate-limit-burst",
        str(burst),
        "--rate-limit-summary-s",
        str(every),
    )
    c = start(collector, tmp_path, *flags)
    count, tag = 5000, f"storm-{secrets.token_hex(4)}"
    began = time.monotonic()
    result = subprocess.run(
        [execprobe(), "storm", str(count), "/bin/true", tag, "2"],
        preexec_fn=test_cgroup.join,
        capture_output=True,
        check=True,
    )
    seconds = time.monotonic() - began
    assert json.loads(result.stdout)["failed"] == 0
    assert c.stop() == 0  # at once: the execs held since the last summary go out in the final flush
    docs = lines_of(c, test_cgroup.id)
    assert [d for d in c.lines() if d["msg"] == "gap"] == []
    logged = [d for d in docs if d["msg"] == "exec"]
    summaries = [d["fields"] for d in docs if d["msg"] == "exec_suppressed"]
    suppressed = sum(s["suppressed"] for s in summaries)
    captured = count + 1  # the storm's children and execprobe itself
    assert len(logged) + suppressed == captured
    assert burst <= len(logged) <= burst + math.floor(rate * seconds)
    # Summaries came while the storm was limited, not only at shutdown, each within its interval.
    assert len(summaries) >= 2
    assert all(s["interval"]["seconds"] <= every + 0.5 for s in summaries)
    assert summaries[0]["top_binaries"][0] == {"filename": "/bin/true", "count": summaries[0]["suppressed"]}
    assert {s["cgroup"] for s in summaries} == {test_cgroup.path.name}
    starts = [s["interval"]["start"] for s in summaries]
    assert starts == sorted(starts)
