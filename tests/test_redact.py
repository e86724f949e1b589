"""Redaction, rule by rule: what each built-in rule masks, what it must leave alone, and a corpus
of real command lines without secrets that must come out untouched."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from collector.policy.patterns import BUILTIN_RULES
from collector.policy.redact import MASK, Redactor

CORPUS = Path(__file__).parent / "fixtures" / "clean_cmdlines.txt"
GH = "ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8"  # 36 characters after the prefix, like a real one
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA75\nq0vxJ==\n-----END RSA PRIVATE KEY-----"

# (rule, argv, expected argv)
MASKED: list[tuple[str, list[str], list[str]]] = [
    # secret-flag
    ("secret-flag", ["mysql", "--password=hunter2", "db"], ["mysql", "--password=****", "db"]),
    ("secret-flag", ["mysql", "--password", "hunter2", "db"], ["mysql", "--password", "****", "db"]),
    ("secret-flag", ["app", "--db-pass", "x y z"], ["app", "--db-pass", "****"]),
    (
        "secret-flag",
        ["app", "--api-key=k1", "--client_secret", "s2"],
        ["app", "--api-key=****", "--client_secret", "****"],
    ),
    ("secret-flag", ["app", "--dbPassword", "p"], ["app", "--dbPassword", "****"]),
    ("secret-flag", ["app", "--clientSecret=p"], ["app", "--clientSecret=****"]),
    ("secret-flag", ["app", "--auth-token", "t"], ["app", "--auth-token", "****"]),
    ("secret-flag", ["app", "--passphrase=correct horse"], ["app", "--passphrase=****"]),
    (
        "secret-flag",
        ["skopeo", "copy", "--src-creds", "me:pw", "a", "b"],
        ["skopeo", "copy", "--src-creds", "****", "a", "b"],
    ),
    ("secret-flag", ["app", "--basic-auth", "u:p"], ["app", "--basic-auth", "****"]),
    ("secret-flag", ["keytool", "-storepass", "changeit"], ["keytool", "-storepass", "****"]),
    ("secret-flag", ["openssl", "rsa", "-passin", "pass:x"], ["openssl", "rsa", "-passin", "****"]),
    (
        "secret-flag",
        ["java", "-Djavax.net.ssl.keyStorePassword=changeit", "-jar", "a.jar"],
        ["java", "-Djavax.net.ssl.keyStorePassword=****", "-jar", "a.jar"],
    ),
    ("secret-flag", ["APP", "--PASSWORD", "Up"], ["APP", "--PASSWORD", "****"]),
    (
        "secret-flag",
        ["sh", "-c", "mysql --password=abc db; echo ok"],
        ["sh", "-c", "mysql --password=**** db; echo ok"],
    ),
    ("secret-flag", ["sh", "-c", "app --token 'a b' --verbose"], ["sh", "-c", "app --token **** --verbose"]),
    (
        "secret-flag",
        ["bash", "-lc", 'vault login --token="$(cat t)" && go'],
        ["bash", "-lc", "vault login --token=**** && go"],
    ),
    # secret-assignment
    (
        "secret-assignment",
        ["env", "AWS_SECRET_ACCESS_KEY=wJal/rXUt+nFEMI", "aws", "s3", "ls"],
        ["env", "AWS_SECRET_ACCESS_KEY=****", "aws", "s3", "ls"],
    ),
    (
        "secret-assignment",
        ["env", "GITHUB_TOKEN=abc", "DB_PASSWORD=a b", "PGPASSWORD=x", "run"],
        ["env", "GITHUB_TOKEN=****", "DB_PASSWORD=****", "PGPASSWORD=****", "run"],
    ),
    (
        "secret-assignment",
        ["env", "MYSQL_PWD=x", "DB_PASS=y", "SECRET_KEY_BASE=z", "a"],
        ["env", "MYSQL_PWD=****", "DB_PASS=****", "SECRET_KEY_BASE=****", "a"],
    ),
    (
        "secret-assignment",
        ["helm", "install", "--set", "db.password=s,image.tag=1"],
        ["helm", "install", "--set", "db.password=****"],
    ),
    (
        "secret-assignment",
        ["docker", "build", "--build-arg=NPM_TOKEN=a b", "."],
        ["docker", "build", "--build-arg=NPM_TOKEN=****", "."],
    ),
    (
        "secret-assignment",
        ["docker", "run", "-e", "API_KEY=k", "img"],
        ["docker", "run", "-e", "API_KEY=****", "img"],
    ),
    (
        "secret-assignment",
        ["sh", "-c", "export DB_PASSWORD='a b'; ./run"],
        ["sh", "-c", "export DB_PASSWORD=****; ./run"],
    ),
    (
        "secret-assignment",
        ["sh", "-c", "SLACK_TOKEN=x curl https://x"],
        ["sh", "-c", "SLACK_TOKEN=**** curl https://x"],
    ),
    (
        "secret-assignment",
        ["curl", "-d", '{"user":"a","password":"hunter2"}', "u"],
        ["curl", "-d", '{"user":"a","password":"****"}', "u"],
    ),
    (
        "secret-assignment",
        ["kubectl", "patch", "-p", "{'data': {'token': 'abc'}}"],
        ["kubectl", "patch", "-p", "{'data': {'token': '****'}}"],
    ),
    # auth-header
    (
        "auth-header",
        ["curl", "-H", "Authorization: Bearer abc.def", "u"],
        ["curl", "-H", "Authorization: Bearer ****", "u"],
    ),
    (
        "auth-header",
        ["curl", "--header=authorization: Basic dXNlcjpwYXNz", "u"],
        ["curl", "--header=authorization: Basic ****", "u"],
    ),
    ("auth-header", ["curl", "-H", "X-API-Key: k123", "u"], ["curl", "-H", "X-API-Key: ****", "u"]),
    ("auth-header", ["curl", "-H", "PRIVATE-TOKEN: glx", "u"], ["curl", "-H", "PRIVATE-TOKEN: ****", "u"]),
    (
        "auth-header",
        ["curl", "-b", "x", "-H", "Cookie: session=abc; theme=dark", "u"],
        ["curl", "-b", "x", "-H", "Cookie: ****", "u"],
    ),
    ("auth-header", ["curl", "-HAuthorization: token t", "u"], ["curl", "-HAuthorization: token ****", "u"]),
    (
        "auth-header",
        ["sh", "-c", 'curl -H "Authorization: Bearer $T" https://x | jq .'],
        ["sh", "-c", 'curl -H "Authorization: Bearer ****" https://x | jq .'],
    ),
    (
        "auth-header",
        ["http", "-d", '{"Authorization": "Bearer zzz"}'],
        ["http", "-d", '{"Authorization": "Bearer ****"}'],
    ),
    # url-credentials
    (
        "url-credentials",
        ["git", "clone", "https://alice:s3cr3t@github.com/o/r.git"],
        ["git", "clone", "https://alice:****@github.com/o/r.git"],
    ),
    (
        "url-credentials",
        ["psql", "postgres://app:p@ss@db:5432/app"],
        ["psql", "postgres://app:****@db:5432/app"],
    ),
    (
        "url-credentials",
        ["git", "clone", "https://:tok@example.com/r"],
        ["git", "clone", "https://:****@example.com/r"],
    ),
    (
        "url-credentials",
        ["git", "clone", "https://" + "0123456789abcdef" * 2 + "01234567@github.com/o/r"],
        ["git", "clone", "https://****@github.com/o/r"],
    ),
    (
        "url-credentials",
        ["sh", "-c", "git push https://bot:pw@gitlab.com/o/r.git HEAD"],
        ["sh", "-c", "git push https://bot:****@gitlab.com/o/r.git HEAD"],
    ),
    # private-key
    (
        "private-key",
        ["ssh-add", "-", PEM],
        ["ssh-add", "-", "-----BEGIN RSA PRIVATE KEY-----****-----END RSA PRIVATE KEY-----"],
    ),
    (
        "private-key",
        ["x", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn"],
        ["x", "-----BEGIN OPENSSH PRIVATE KEY-----****"],
    ),
    (
        "private-key",
        ["gpg", "-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQ\n-----END PGP PRIVATE KEY BLOCK-----"],
        ["gpg", "-----BEGIN PGP PRIVATE KEY BLOCK-----****-----END PGP PRIVATE KEY BLOCK-----"],
    ),
    # cli-password
    ("cli-password", ["mysql", "-uroot", "-psecret", "db"], ["mysql", "-uroot", "-p****", "db"]),
    (
        "cli-password",
        ["/usr/bin/mysqldump", "-h", "db", "-pS3", "app"],
        ["/usr/bin/mysqldump", "-h", "db", "-p****", "app"],
    ),
    ("cli-password", ["sshpass", "-p", "pw", "ssh", "h"], ["sshpass", "-p", "****", "ssh", "h"]),
    ("cli-password", ["sshpass", "-ppw", "ssh", "h"], ["sshpass", "-p****", "ssh", "h"]),
    (
        "cli-password",
        ["redis-cli", "-h", "r", "-a", "pw", "ping"],
        ["redis-cli", "-h", "r", "-a", "****", "ping"],
    ),
    ("cli-password", ["curl", "-u", "bob:pw", "https://x"], ["curl", "-u", "bob:****", "https://x"]),
    ("cli-password", ["curl", "--user=bob:pw", "https://x"], ["curl", "--user=bob:****", "https://x"]),
    (
        "cli-password",
        ["sh", "-c", "mysql -uroot -psecret db && curl -u bob:pw https://x"],
        ["sh", "-c", "mysql -uroot -p**** db && curl -u bob:**** https://x"],
    ),
    (
        "cli-password",
        ["docker", "login", "-u", "me", "-p", "pw", "ghcr.io"],
        ["docker", "login", "-u", "me", "-p", "****", "ghcr.io"],
    ),
    (
        "cli-password",
        ["sh", "-c", 'podman login -u me -p "$PW" r && podman push x'],
        ["sh", "-c", "podman login -u me -p **** r && podman push x"],
    ),
    # token shapes
    ("github-token", ["git", "push", GH], ["git", "push", MASK]),
    ("github-token", ["x", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"], ["x", MASK]),
    ("gitlab-token", ["x", "glpat-abcdefghij0123456789"], ["x", MASK]),
    ("slack-token", ["x", "xoxb-1234567890-abcdefghij"], ["x", MASK]),
    (
        "slack-webhook",
        ["curl", "https://hooks.slack.com/services/T00/B00/XXXXXXXX"],
        ["curl", "https://hooks.slack.com/services/****"],
    ),
    ("aws-access-key-id", ["x", "AKIAIOSFODNN7EXAMPLE"], ["x", MASK]),
    ("jwt", ["x", f"jwt:{JWT}!"], ["x", "jwt:****!"]),
    (
        "jwt",
        ["curl", "-d", f"id_token={JWT}&x=1"],
        ["curl", "-d", "id_token=****"],
    ),  # the rest of a NAME=value
    ("google-api-key", ["x", "AIzaSyA1234567890abcdefghijklmnopqrstuv"], ["x", MASK]),
    ("stripe-key", ["x", "sk_live_abcdefghijklmnop1234"], ["x", MASK]),
    ("npm-token", ["x", "npm_" + "a" * 36], ["x", MASK]),
    ("pypi-token", ["twine", "pypi-AgEIcHlwaS5vcmcCJDAwMDAwMDAwLTAwMDAtMDAwMC0wMDAw"], ["twine", MASK]),
    (
        "github-token",
        ["sh", "-c", f"echo {GH} | gh auth login --with-token"],
        ["sh", "-c", "echo **** | gh auth login --with-token"],
    ),
]

# Near misses: each looks like a secret to a careless rule, and is not one.
UNTOUCHED: list[list[str]] = [
    ["psql", "--no-password", "-h", "db"],
    ["mysql", "--password", "-h", "db"],  # --password without a value prompts
    ["app", "--pass-through", "x"],
    ["app", "--token-file", "/var/run/token", "--password-file=/p"],
    ["docker", "login", "--password-stdin", "r.example.com"],
    ["ansible-playbook", "--ask-vault-pass", "site.yml"],
    ["mysql", "-uroot", "-p", "db"],
    ["mysql", "-h", "db", "-P", "3306"],
    ["docker", "run", "-p", "8080:80", "nginx"],
    ["sh", "-c", "docker run -p 80:80 nginx; ssh -p 22 h"],
    ["env", "PWD=/w", "OLDPWD=/", "POSTGRES_PASSWORD_FILE=/run/s", "TOKEN_URL=https://a/t", "x"],
    ["env", "TOKENIZERS_PARALLELISM=false", "MAX_TOKENS=1", "BYPASS=1", "SSH_AUTH_SOCK=/tmp/a", "x"],
    ["git", "log", "--author=me"],
    ["sed", "s/password=.*/password=X/", "f"],
    ["curl", "-H", "Accept: application/json", "https://example.com:8443/a?b=c#d"],
    ["curl", "-u", "alice", "https://x"],
    ["git", "clone", "git@github.com:o/r.git", "ssh://git@github.com/o/r"],
    ["x", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"],
    ["x", "ghp_short", "AKIA1234", "xoxb-1", "eyJhbGciOiJIUzI1NiJ9"],
    ["sh", "-c", "grep -q password /etc/app.conf && echo found"],
    ["docker", "build", "--secret", "id=npmrc,src=/root/.npmrc", "."],
    ["openssl", "enc", "-pass", "file:/run/secrets/p", "-passin", "env:PW"],
    [],
    [""],
]


def clean_corpus() -> list[list[str]]:
    lines = CORPUS.read_text().splitlines()
    return [shlex.split(line) for line in lines if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


@pytest.mark.parametrize(
    ("rule", "argv", "expected"), MASKED, ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(MASKED)]
)
def test_each_rule_masks_its_secrets(
    redactor: Redactor, rule: str, argv: list[str], expected: list[str]
) -> None:
    out, fired = redactor.redact(argv)
    assert out == expected
    assert rule in fired
    assert argv != out  # the original list is not modified in place
    assert all(name in redactor.rule_names for name in fired)


@pytest.mark.parametrize("argv", UNTOUCHED)
def test_near_misses_are_untouched(redactor: Redactor, argv: list[str]) -> None:
    out, fired = redactor.redact(argv)
    assert (out, fired) == (argv, ())
    assert out is argv  # nothing copied when nothing changed


def test_every_built_in_rule_has_an_example() -> None:
    assert {r.name for r in BUILTIN_RULES} <= {rule for rule, _, _ in MASKED}


def test_the_corpus_is_big_and_comes_out_untouched(redactor: Redactor) -> None:
    corpus = clean_corpus()
    assert len(corpus) >= 300
    changed = [(argv, redactor.redact(argv)) for argv in corpus if redactor.redact(argv)[1]]
    assert changed == []


def test_hints_never_hide_a_match() -> None:
    """The prefilter is only an optimisation: without it every rule runs, and the result is the same."""
    fast, full = Redactor(), Redactor(prefilter=False)
    for argv in [a for _, a, _ in MASKED] + UNTOUCHED + clean_corpus():
        assert fast.redact(argv) == full.redact(argv), argv


def test_text_that_lower_changes_in_length_still_redacts(redactor: Redactor) -> None:
    # "İ".lower() is two code points: the folded patterns cannot run on the lowered text.
    argv = ["İİ", "--Password", "hunter2", "X-API-KEY: k", "DB_PASSWORD=İ"]
    out, fired = redactor.redact(argv)
    assert out == ["İİ", "--Password", MASK, "X-API-KEY: ****", "DB_PASSWORD=****"]
    assert set(fired) == {"secret-flag", "auth-header", "secret-assignment"}


def test_overlapping_matches_become_one_mask(redactor: Redactor) -> None:
    # The flag rule masks the value and the GitHub rule the token inside it: one mask, both named.
    out, fired = redactor.redact(["gh", f"--token={GH}x"])
    assert out == ["gh", "--token=****"]
    assert set(fired) == {"secret-flag", "github-token"}


def test_a_long_match_does_not_hide_a_secret_before_its_own(redactor: Redactor) -> None:
    # The curl rule's match runs from argv[0] to -u; the header in between is still found.
    out, fired = redactor.redact(["curl", "-H", "Authorization: Bearer t", "-u", "a:b", "u"])
    assert out == ["curl", "-H", "Authorization: Bearer ****", "-u", "a:****", "u"]
    assert set(fired) == {"auth-header", "cli-password"}


def test_a_mask_is_not_masked_again(redactor: Redactor) -> None:
    once, fired = redactor.redact(["app", "--password", "x", "-H", "Authorization: Bearer y"])
    assert fired
    assert redactor.redact(once) == (once, ())


def test_a_secret_cut_at_the_argv_cap_is_still_masked(redactor: Redactor) -> None:
    # A truncated argv ends in a partial argument: an unterminated quote or PEM block still masks.
    assert redactor.redact(["sh", "-c", "app --token 'abc"])[0] == ["sh", "-c", "app --token ****"]
    assert redactor.redact(["x", "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE"])[0] == [
        "x",
        "-----BEGIN EC PRIVATE KEY-----****",
    ]


def test_user_rules_search_each_argument(redactor: Redactor) -> None:
    custom = Redactor(
        BUILTIN_RULES,
        [("vault-id", r"^--vault-id=(?:[^@]*)@(?P<secret>.+)$"), ("ticket", r"(?i)tkt-(?P<secret>\d{4,})")],
    )
    out, fired = custom.redact(
        ["ansible", "--vault-id=dev@s3cr3t", "TKT-12345 and tkt-999", "--password", "p"]
    )
    assert out == ["ansible", "--vault-id=dev@****", "TKT-**** and tkt-999", "--password", MASK]
    assert fired == ("vault-id", "ticket", "secret-flag")  # in the order they occur
    # ^ and $ are the argument's own ends, not the command line's.
    assert custom.redact(["x", "--vault-id=a@b"])[0] == ["x", "--vault-id=a@****"]


def test_without_rules_nothing_changes() -> None:
    argv = ["mysql", "--password=x"]
    assert Redactor(()).redact(argv) == (argv, ())


def test_one_user_rule_does_not_hide_another() -> None:
    # The first rule's match starts before the second rule's secret and keeps it readable.
    custom = Redactor((), [("outer", r"cfg:\S* key=(?P<secret>\w+)"), ("inner", r"tkt-(?P<secret>\d+)")])
    assert custom.redact(["x", "cfg:tkt-123 key=abc"]) == (["x", "cfg:tkt-**** key=****"], ("inner", "outer"))


def test_only_groups_named_secret_are_masked() -> None:
    custom = Redactor((), [("r", r"(?P<secretary>a)(?P<secret_1>b)(?P<secret>c)")])
    assert custom.redact(["abc"])[0] == ["a****"]
