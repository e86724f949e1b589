"""The configured policy: exclusions, then the rate limit, then redaction, each counted."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from collector.config import PolicyConfig
from collector.event import ExecEvent
from collector.k8s import ProcessRecord, Workload, parse_selector
from collector.policy import MASK, RulePolicy, SuppressedRecord, build_policy
from collector.policy.exclude import Exclusion, Exclusions
from collector.policy.ratelimit import RateLimiter
from collector.policy.redact import Redactor
from collector.policy.spec import RedactionRule
from tests.support.records import event

S = 1_000_000_000


def ev(
    filename: str = "/bin/true", argv: list[str] | None = None, t_ns: int = S, cgroup: int = 7
) -> ExecEvent:
    return event(
        argv or [filename.rsplit("/", 1)[-1]], boot_ns=t_ns, cgroup_id=cgroup, filename=filename.encode()
    )


def web(resolved: bool = True) -> Workload:
    return Workload("n", "ns", "web-0", "uid-web", "app", "c1", pod_labels={"app": "web"}, resolved=resolved)


def db() -> Workload:
    return Workload("n", "ns", "db-0", "uid-db", "pg", "c2", pod_labels={"app": "db", "tier": "data"})


EXCLUSIONS = Exclusions(
    [
        Exclusion("pg-ready", ("/usr/bin/pg_isready",), parse_selector("app=db")),
        Exclusion("nagios", ("/usr/lib/nagios/plugins/*", "*/grpc_health_probe")),
        Exclusion("web-pod", pod_selector=parse_selector("app in (web)")),
    ]
)


@pytest.mark.parametrize(
    ("filename", "workload", "rule"),
    [
        ("/usr/bin/pg_isready", db(), "pg-ready"),
        ("/usr/bin/pg_isready", None, None),  # standalone: no pod to match the selector
        ("/usr/bin/pg_isready", web(), "web-pod"),  # not a db pod, but the web rule takes it
        ("/usr/bin/pg_isready2", db(), None),  # exact means exact
        ("/usr/lib/nagios/plugins/check_disk", None, "nagios"),
        ("/usr/lib/nagios/plugins/sub/dir/check", db(), "nagios"),  # * crosses /
        ("/usr/lib/nagios/plugin", None, None),
        ("/bin/grpc_health_probe", None, "nagios"),
        ("grpc_health_probe", None, None),  # the glob wants a / before it
        ("/bin/sh", web(), "web-pod"),
        ("/bin/sh", web(resolved=False), None),  # a pod not yet described is never excluded
        ("/bin/sh", db(), None),
    ],
)
def test_exclusion_rules(filename: str, workload: Workload | None, rule: str | None) -> None:
    assert EXCLUSIONS.match(ev(filename), workload) == rule


def test_every_exec_is_counted_once_and_excluded_ones_spend_no_tokens() -> None:
    policy = RulePolicy(Redactor(), RateLimiter(rate=1, burst=2, summary_s=5), EXCLUSIONS)
    batch = [
        ProcessRecord(ev("/usr/lib/nagios/plugins/check_load"), None),
        ProcessRecord(ev("/usr/lib/nagios/plugins/check_load"), None),
        ProcessRecord(ev("/usr/lib/nagios/plugins/check_load"), None),
        ProcessRecord(ev("/usr/bin/mysql", ["mysql", "--password=hunter2"]), None),  # takes a token
        ProcessRecord(ev("/bin/ls"), None),  # takes the other
        ProcessRecord(
            ev("/usr/bin/mysql", ["mysql", "--password=hunter3"]), None
        ),  # held back: never redacted
        ProcessRecord(ev("/bin/sh"), web()),  # excluded by pod
    ]
    out = policy.apply(batch)
    assert [argv_of(r) for r in out if isinstance(r, ProcessRecord)] == [["mysql", "--password=****"], ["ls"]]
    c = policy.counters
    assert (c.captured, c.logged, c.suppressed) == (7, 2, 1)
    assert c.excluded == {"pg-ready": 0, "nagios": 3, "web-pod": 1}
    assert c.captured == c.logged + c.suppressed + sum(c.excluded.values())
    assert c.redacted["secret-flag"] == 1 and c.redacted_execs == 1
    assert set(c.redacted) == set(Redactor().rule_names)  # every rule has its counter from the start
    assert c.pending == 1
    [summary] = policy.due(S, final=True)
    assert isinstance(summary, SuppressedRecord)
    assert (summary.suppressed, summary.top_binaries) == (1, (("/usr/bin/mysql", 1),))
    assert (c.summaries, c.suppressed_reported, c.pending) == (1, 1, 0)


def argv_of(record: ProcessRecord) -> list[str]:
    event = record.event
    assert isinstance(event, ExecEvent)
    return event.argv


def test_no_field_of_a_redacted_record_holds_the_secret() -> None:
    original = ev("/usr/bin/curl", ["curl", "-H", "Authorization: Bearer s3cr3t-t0ken", "https://x"])
    untouched = replace(original)
    [record] = RulePolicy(Redactor()).apply([ProcessRecord(original, web())])
    assert isinstance(record, ProcessRecord)
    assert record.redactions == ("auth-header",)
    assert argv_of(record) == ["curl", "-H", f"Authorization: Bearer {MASK}", "https://x"]
    assert "s3cr3t-t0ken" not in repr(record)
    assert replace(original, argv=untouched.argv) == untouched  # otherwise the same exec


def test_unredacted_records_pass_as_they_came() -> None:
    original = ProcessRecord(ev("/bin/ls", ["ls", "-la"]), None)
    argv = argv_of(original)
    [record] = RulePolicy(Redactor()).apply([original])
    assert record is original and argv_of(original) is argv and original.redactions == ()


def test_records_of_a_kind_without_argv_or_filename_pass_policy_by_their_workload() -> None:
    @dataclass(slots=True)
    class Other:  # a kind with the process fields only, as an exit record
        time_ns: int
        boot_ns: int
        pid: int = 1
        uid: int = 0
        comm: str = "sh"
        cgroup_id: int = 7
        cgroup_ancestors: tuple[int, ...] = ()
        cgroup_name: str = "c"
        parent_cgroup_name: str = "p"

    policy = RulePolicy(Redactor(), RateLimiter(rate=1, burst=1, summary_s=5), EXCLUSIONS)
    out = policy.apply([ProcessRecord(Other(S, S), None), ProcessRecord(Other(S, S), web())])
    assert [r.workload for r in out if isinstance(r, ProcessRecord)] == [None]  # the web pod is excluded
    assert policy.counters.excluded["web-pod"] == 1 and policy.counters.excluded["nagios"] == 0
    assert policy.apply([ProcessRecord(Other(S, S), None)]) == []  # over the rate: held back
    [summary] = policy.due(S, final=True)
    assert isinstance(summary, SuppressedRecord) and summary.suppressed == 1 and summary.top_binaries == ()


def test_build_policy_from_config() -> None:
    assert build_policy(PolicyConfig()).limiter is None
    default = build_policy(PolicyConfig())
    assert default.redactor is not None and default.exclusions is None
    assert build_policy(PolicyConfig(redact=False)).redactor is None

    config = PolicyConfig(
        rate_limit=2.5,
        disabled_redaction_rules=("secret-flag",),
        redaction_rules=(RedactionRule("ticket", r"TKT-(?P<secret>\d+)"),),
        exclusions=(Exclusion("true", ("/bin/true",)),),
    )
    policy = build_policy(config)
    assert policy.limiter is not None and policy.limiter.capacity == 3 * 10**12  # burst: ceil(rate)
    assert policy.redactor is not None
    assert "secret-flag" not in policy.redactor.rule_names and "ticket" in policy.redactor.rule_names
    out = policy.apply(
        [
            ProcessRecord(ev("/bin/true"), None),
            ProcessRecord(ev("/bin/echo", ["echo", "--password", "p", "TKT-42"]), None),
        ]
    )
    assert [argv_of(r) for r in out if isinstance(r, ProcessRecord)] == [
        ["echo", "--password", "p", "TKT-****"]
    ]
    assert policy.counters.excluded == {"true": 1}
    assert build_policy(replace(config, rate_limit_burst=7)).limiter.capacity == 7 * 10**12  # type: ignore[union-attr]
