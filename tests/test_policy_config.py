"""Policy settings: flags, environment and YAML, and structured rules checked at start-up."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from collector.config import ConfigError, PolicyConfig, add_flags, build_config
from collector.k8s import parse_selector
from collector.policy.exclude import Exclusion
from collector.policy.spec import RedactionRule
from tests.support.require import REPO


def args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser)
    return parser.parse_args(list(argv))


def from_yaml(tmp_path: Path, text: str, *argv: str) -> PolicyConfig:
    cfg = tmp_path / "execlog.yaml"
    cfg.write_text(text)
    return build_config(args("--config", str(cfg), *argv), environ={}).policy


def test_defaults_redact_and_do_not_limit() -> None:
    assert build_config(args(), environ={}).policy == PolicyConfig(
        redact=True, rate_limit=0.0, rate_limit_burst=None, rate_limit_summary_s=5.0
    )


def test_flags_environment_and_yaml(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rate_limit: 20\nrate_limit_burst: 50\nrate_limit_summary_s: 2.5\nredact: false\n")
    env = {"EXECLOG_CONFIG": str(cfg), "EXECLOG_RATE_LIMIT_BURST": "60"}
    policy = build_config(args("--rate-limit", "0.5"), environ=env).policy
    assert (policy.rate_limit, policy.rate_limit_burst, policy.rate_limit_summary_s) == (0.5, 60, 2.5)
    assert policy.redact is False
    assert build_config(args("--redact", "off"), environ={}).policy.redact is False


def test_structured_rules_from_yaml(tmp_path: Path) -> None:
    policy = from_yaml(
        tmp_path,
        """
redaction_rules:
  - name: vault-id
    pattern: '^--vault-id=[^@]*@(?P<secret>.+)$'
disabled_redaction_rules: [jwt, cli-password]
exclusions:
  - name: readiness-probes
    binaries: [/bin/grpc_health_probe, "/usr/lib/nagios/plugins/*"]
    pod_selector: "app in (web, api)"
  - name: pg-ready
    binaries: /usr/bin/pg_isready
""",
    )
    assert policy.redaction_rules == (RedactionRule("vault-id", "^--vault-id=[^@]*@(?P<secret>.+)$"),)
    assert policy.disabled_redaction_rules == ("jwt", "cli-password")
    assert policy.exclusions == (
        Exclusion(
            "readiness-probes",
            ("/bin/grpc_health_probe", "/usr/lib/nagios/plugins/*"),
            parse_selector("app in (web, api)"),
        ),
        Exclusion("pg-ready", ("/usr/bin/pg_isready",)),
    )
    assert from_yaml(tmp_path, "exclusions:\n").exclusions == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("redaction_rules: {name: x}", "key redaction_rules: expected a list of redaction rules, got dict"),
        ("redaction_rules: [{name: x}]", "key redaction_rules[0]: missing the field pattern"),
        (
            "redaction_rules: [{name: x, pattern: 'a', colour: red}]",
            "key redaction_rules[0]: unknown fields colour (known: name, pattern)",
        ),
        ("redaction_rules: [{name: X Y, pattern: a}]", "key redaction_rules[0].name: 'X Y' is not a name"),
        (
            "redaction_rules: [{name: jwt, pattern: '(?P<secret>x)'}]",
            "key redaction_rules[0].name: jwt is a built-in rule's name",
        ),
        (
            "redaction_rules: [{name: a, pattern: '(?P<secret>x)'}, {name: a, pattern: '(?P<secret>y)'}]",
            "key redaction_rules[1].name: a is used twice",
        ),
        (
            "redaction_rules: [{name: a, pattern: 'token=(\\S+)'}]",
            "key redaction_rules[0].pattern: has no group named secret",
        ),
        (
            "redaction_rules: [{name: a, pattern: '(?P<secret>x'}]",
            "key redaction_rules[0].pattern: not a valid regular expression: missing ), unterminated",
        ),
        (
            "redaction_rules: [{name: a, pattern: '(?P<secret>\\d*)'}]",
            "key redaction_rules[0].pattern: can match an empty string",
        ),
        (
            "redaction_rules: [{name: a, pattern: '(x)(?P<secret>\\1)'}]",
            "key redaction_rules[0].pattern: refers to a group by number",
        ),
        (
            "redaction_rules: [{name: ok, pattern: 'k=(?P<secret>\\w+)'},"
            " {name: a, pattern: '(?P<secret>(a+)+)$'}]",
            "key redaction_rules[1].pattern: takes more than 0.2s on a 32 KiB argument",
        ),
        (
            "disabled_redaction_rules: [jwt, jtw]",
            "key disabled_redaction_rules[1]: 'jtw' is not a built-in rule",
        ),
        (
            "disabled_redaction_rules: jwt",
            "key disabled_redaction_rules: expected a list of built-in rule names",
        ),
        ("exclusions: [{name: a}]", "key exclusions[0]: needs binaries, a pod_selector or both"),
        ("exclusions: [{name: a, binary: /bin/x}]", "key exclusions[0]: unknown fields binary"),
        (
            "exclusions: [{name: a, pod_selector: 'app in web'}]",
            "key exclusions[0].pod_selector: label selector",
        ),
        ("exclusions: [{name: a, pod_selector: ''}]", "key exclusions[0].pod_selector: expected a non-empty"),
        (
            "exclusions: [{name: a, binaries: [1]}]",
            "key exclusions[0].binaries: expected a list of paths or globs",
        ),
        ("rate_limit: -1", "key rate_limit: the rate limit must be between 0 (off) and 1000000"),
        ("rate_limit: .nan", "key rate_limit: the rate limit must be between 0"),
        ("rate_limit_burst: 0", "key rate_limit_burst: the burst must be at least 1"),
        ("rate_limit_summary_s: 0", "key rate_limit_summary_s: the summary interval must be between"),
        ("rate_limit: [1]", "key rate_limit: expected N, got list"),
        ("exclusion: []", "unknown settings exclusion"),
    ],
)
def test_bad_settings_name_the_file_the_key_and_the_item(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_yaml(tmp_path, text)
    assert message in str(info.value)
    assert str(tmp_path / "execlog.yaml") in str(info.value)


def test_a_bad_rule_stops_execlog_run_with_one_line_and_status_2(tmp_path: Path) -> None:
    cfg = tmp_path / "execlog.yaml"
    cfg.write_text("redaction_rules:\n  - name: api\n    pattern: 'api=(\\w+)'\n")
    result = subprocess.run(
        [sys.executable, "-m", "collector", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"execlog: bad setting: config file {cfg}, key redaction_rules[0].pattern: "
        "has no group named secret, e.g. (?P<secret>...), to say what to mask"
    ]
    assert result.stdout == ""


def test_the_policy_page_examples_are_valid_settings(tmp_path: Path) -> None:
    page = (REPO / "docs" / "policy.md").read_text()
    blocks = page.split("```yaml\n")[1:]
    assert len(blocks) >= 2
    for block in blocks:
        text = block.split("```", 1)[0]
        policy = from_yaml(tmp_path, text)
        assert policy.redaction_rules or policy.disabled_redaction_rules or policy.exclusions
