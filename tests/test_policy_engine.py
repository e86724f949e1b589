"""The configured policy: exclusions, then the rate limit, then redaction, each counted."""

from __future__ import annotations

from dataclasses import replace

import pytest

from collector.config import PolicyConfig
from collector.event import ExecEvent
from collector.k8s import Workload, parse_selector
from collector.policy import MASK, ExecRecord, RulePolicy, SuppressedRecord, build_policy
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
        (ev("/usr/lib/nagios/plugins/check_load"), None),
        (ev("/usr/lib/nagios/plugins/check_load"), None),
        (ev("/usr/lib/nagios/plugins/check_load"), None),
        (ev("/usr/bin/mysql", ["mysql", "--password=hunter2"]), None),  # takes a token
        (ev("/bin/ls"), None),  # takes the other
        (ev("/usr/bin/mysql", ["mysql", "--password=hunter3"]), None),  # held back: never redacted
        (ev("/bin/sh"), web()),  # excluded by pod
    ]
    out = policy.apply(batch)
    assert [r.argv for r in out if isinstance(r, ExecRecord)] == [["mysql", "--password=****"], ["ls"]]
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


def test_no_field_of_a_redacted_record_holds_the_secret() -> None:
    original = ev("/usr/bin/curl", ["curl", "-H", "Authorization: Bearer s3cr3t-t0ken", "https://x"])
    [record] = RulePolicy(Redactor()).apply([(original, web())])
    assert isinstance(record, ExecRecord)
    assert record.redactions == ("auth-header",)
    assert record.argv == ["curl", "-H", f"Authorization: Bearer {MASK}", "https://x"]
    assert record.event.argv == record.argv  # the event the record carries is masked too
    assert "s3cr3t-t0ken" not in repr(record)
    assert replace(record.event, argv=original.argv) == original  # and is otherwise the same exec
    assert original.argv[2].endswith("s3cr3t-t0ken")  # the decoded event itself is left alone


def test_unredacted_records_share_the_event() -> None:
    original = ev("/bin/ls", ["ls", "-la"])
    [record] = RulePolicy(Redactor()).apply([(original, None)])
    assert isinstance(record, ExecRecord)
    assert record.event is original and record.argv is original.argv and record.redactions == ()


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
        [(ev("/bin/true"), None), (ev("/bin/echo", ["echo", "--password", "p", "TKT-42"]), None)]
    )
    assert [r.argv for r in out if isinstance(r, ExecRecord)] == [["echo", "--password", "p", "TKT-****"]]
    assert policy.counters.excluded == {"true": 1}
    assert build_policy(replace(config, rate_limit_burst=7)).limiter.capacity == 7 * 10**12  # type: ignore[union-attr]
