"""Redaction cost per exec on the ring reader's thread, for realistic command lines.

Each case is timed in interleaved rounds (every case once per round, so a busy neighbour slows
all of them alike); the table gives the median over rounds of the mean time per call. Columns:

- decode: `collector.event.decode` of the same exec's ring record, the hot path's existing cost
  per exec, for scale;
- redact: `Redactor()` with the default rules, as `execlog run` uses it;
- no prefilter: the same rules, each run on every argv (what the hint prefilter saves);
- policy: the whole default-plus policy per exec (two exclusions, a rate limit that never bites,
  redaction), as `RulePolicy.apply` runs it on a batch.
"""

from __future__ import annotations

import shlex
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from collector.config import PolicyConfig
from collector.event import ExecEvent, decode
from collector.k8s import ProcessRecord
from collector.policy import Redactor, build_policy
from collector.policy.exclude import Exclusion
from tests.support.records import record

__all__ = ["CASES", "Case", "RedactionCost", "measure", "table"]

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "clean_cmdlines.txt"
_GCC = ["gcc", "-Wall", "-Wextra", "-O2", "-g", "-fPIC", "-DNDEBUG", "-D_GNU_SOURCE", "-Isrc", "-Ibuild/gen"]


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    argv: list[str]
    secret: bool  # whether the default rules must mask something in it


_FOUR_KIB = ["cc", *[f"-Isrc/component{i:03d}/include" for i in range(140)]]
_THIRTY_TWO_KIB = ["cc", *[f"-Isrc/component{i:04d}/include" for i in range(1100)]]
CASES: tuple[Case, ...] = (
    *(
        Case(name, shlex.split(line), secret)
        for name, line, secret in (
            ("ls -la /tmp", "ls -la /tmp", False),
            ("git commit -m …", "git commit -m 'fix the parser for empty input' --signoff", False),
            (
                "kubectl get pods …",
                "kubectl get pods -n coder -l app=coder -o jsonpath='{.items[*].spec}'",
                False,
            ),
            (
                "sh -c 'cd … && make …'",
                "sh -c 'cd /workspace && make -j8 all && ./run-tests --verbose'",
                False,
            ),
            (
                "curl https://… (no auth)",
                "curl -fsSL -H 'Accept: application/json' https://api.example.com/v1",
                False,
            ),
        )
    ),
    Case(
        "gcc, 30 flags",
        [*_GCC, *[f"-Iinclude/mod{i}" for i in range(20)], "-c", "main.c", "-o", "main.o"],
        False,
    ),
    Case("4 KiB argv", _FOUR_KIB, False),
    Case("32 KiB argv", _THIRTY_TWO_KIB, False),
    *(
        Case(name, shlex.split(line), secret)
        for name, line, secret in (
            ("mysql --password=…", "mysql -h db -u app --password=hunter2 appdb", True),
            (
                "env AWS_SECRET_ACCESS_KEY=… aws",
                "env AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG aws s3 ls",
                True,
            ),
            ("curl -H 'Authorization: Bearer …'", "curl -H 'Authorization: Bearer abc.def' https://x", True),
            ("git clone https://u:p@…", "git clone https://bob:s3cr3t@github.com/org/repo.git", True),
            (
                "sh -c 'curl … --token …'",
                "sh -c 'cd /w && curl -fsS --token s3cr3t https://x | jq -r .id'",
                True,
            ),
        )
    ),
    Case("4 KiB argv + --api-key", [*_FOUR_KIB, "--api-key", "k"], True),
)


def corpus() -> list[list[str]]:
    lines = CORPUS.read_text().splitlines()
    return [shlex.split(line) for line in lines if line.strip() and not line.startswith("#")]


@dataclass(slots=True)
class RedactionCost:
    name: str
    argv_bytes: float
    rounds: dict[str, list[float]] = field(default_factory=dict)  # column -> µs per exec, per round

    def median(self, column: str) -> float:
        return statistics.median(self.rounds[column])


def _ring_record(argv: list[str]) -> bytes:
    """The exec as the kernel program writes it into the ring (bpf/exec.h)."""
    block = b"".join(a.encode() + b"\0" for a in argv)
    return record(filename=argv[0].encode(), argv=block)


def _timed(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - start) / calls / 1000


def measure(rounds: int = 7, budget_s: float = 0.02) -> list[RedactionCost]:
    """Time every case in every round; `budget_s` is roughly the time per case and column."""
    redactor, unfiltered = Redactor(), Redactor(prefilter=False)
    policy = build_policy(
        PolicyConfig(
            rate_limit=1e6,
            exclusions=(
                Exclusion("probes", ("*/grpc_health_probe",)),
                Exclusion("nagios", ("/usr/lib/nagios/*",)),
            ),
        )
    )
    lines = corpus()
    work: list[tuple[str, list[list[str]]]] = [(c.name, [c.argv]) for c in CASES]
    work.append((f"corpus: {len(lines)} real command lines", lines))
    costs = []
    for name, argvs in work:
        sizes = [sum(len(a.encode()) + 1 for a in argv) for argv in argvs]
        costs.append(RedactionCost(name, statistics.mean(sizes)))
    raws = [[_ring_record(argv) for argv in argvs] for _, argvs in work]
    for _ in range(rounds):
        for cost, (_, argvs), records in zip(costs, work, raws, strict=True):
            events = [cast(ExecEvent, decode(raw, 0)) for raw in records]
            originals = [ev.argv for ev in events]
            batch = [ProcessRecord(ev, None) for ev in events]

            def decode_all(records: list[bytes] = records) -> object:
                return [decode(raw, 0) for raw in records]

            def redact_all(argvs: list[list[str]] = argvs) -> object:
                return [redactor.redact(a) for a in argvs]

            def redact_unfiltered(argvs: list[list[str]] = argvs) -> object:
                return [unfiltered.redact(a) for a in argvs]

            def apply_policy(
                batch: list[ProcessRecord] = batch, originals: list[list[str]] = originals
            ) -> object:
                out = policy.apply(batch)
                # Policy masks argv in place: put the secrets back for the next call (~50 ns each).
                for rec, argv in zip(batch, originals, strict=True):
                    rec.event.argv = argv  # type: ignore[attr-defined]
                    rec.redactions = ()
                return out

            columns: dict[str, Callable[[], object]] = {
                "decode": decode_all,
                "redact": redact_all,
                "no prefilter": redact_unfiltered,
                "policy": apply_policy,
            }
            for column, fn in columns.items():
                once = max(_timed(fn, 1), 0.1)
                calls = max(1, int(budget_s * 1e6 / once))
                cost.rounds.setdefault(column, []).append(_timed(fn, calls) / len(argvs))
    return costs


def table(costs: list[RedactionCost], rounds: int) -> str:
    lines = [
        f"Redaction per exec on the reader thread (µs), median of {rounds} interleaved rounds",
        "",
        "| command line | argv bytes | decode | redact | no prefilter | whole policy |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in costs:
        lines.append(
            f"| {c.name} | {c.argv_bytes:.0f} | {c.median('decode'):.1f} | {c.median('redact'):.1f} "
            f"| {c.median('no prefilter'):.1f} | {c.median('policy'):.1f} |"
        )
    return "\n".join(lines)
