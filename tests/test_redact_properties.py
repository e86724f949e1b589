"""Redaction properties over generated secrets: a masked argv never holds the secret, and the text
around it is exactly what it was."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from collector.policy.patterns import BUILTIN_RULES
from collector.policy.redact import MASK, Redactor

REDACTOR = Redactor()
FULL = Redactor(prefilter=False)
HINTS = sorted({hint for rule in BUILTIN_RULES for hint in rule.hints})

# Any text an argument can hold (no NUL), printable and not: secrets are not polite.
ANY_TEXT = st.text(
    st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), min_size=6, max_size=40
)
# Characters that end no shell word: a secret written unquoted in a script.
SHELL_WORD = st.text(string.ascii_letters + string.digits + "!#$%*+,-./:=?@[]^_{}~", min_size=6, max_size=40)
# Characters of a URL password (RFC 3986 sub-delims and unreserved, less the ones that end it).
URL_PASSWORD = st.text(string.ascii_letters + string.digits + "-._~!$&()*+,;=%", min_size=6, max_size=40)
# Hint-free values for exactness: nothing in them can start a match of its own.
PLAIN = st.text(string.ascii_letters + string.digits + "!#$%*+,./^_~-", min_size=6, max_size=40)

FLAGS = [
    "password",
    "passwd",
    "db-password",
    "pass",
    "api-key",
    "api_key",
    "apikey",
    "client-secret",
    "secret",
    "token",
    "auth-token",
    "access_token",
    "passphrase",
    "creds",
    "basic-auth",
    "storepass",
]
RUN_TOGETHER = ["dbPassword", "clientSecret", "authToken", "PASSWORD"]
NAMES = [
    "AWS_SECRET_ACCESS_KEY",
    "GITHUB_TOKEN",
    "DB_PASSWORD",
    "PGPASSWORD",
    "MYSQL_PWD",
    "NPM_TOKEN",
    "SECRET_KEY_BASE",
    "API_KEY",
    "db.password",
    "auth.token",
    "CLIENT_SECRET",
    "REDIS_PASS",
]
HEADERS = [
    "Authorization: Bearer ",
    "Authorization: Basic ",
    "authorization: token ",
    "Proxy-Authorization: Basic ",
    "X-API-Key: ",
    "PRIVATE-TOKEN: ",
    "Cookie: ",
    "X-Vault-Token:",
]

# A form puts a value somewhere in a command line: form(value) -> argv. form(MASK) is the expected
# redaction, so everything but the value must come out exactly as it went in.
Form = Callable[[str], list[str]]


def option_like(value: str) -> bool:
    """Values the flag rule deliberately leaves alone (documented): another option or a reference."""
    return bool(
        re.match(r"(?i)-(?:-[a-z]|[a-z]$|-$)|(?:id|type|src|source|target|file|env|fd)[=:]|stdin$", value)
    )


def hint_free(value: str) -> bool:
    lowered = value.lower()
    return not any(hint in lowered for hint in HINTS)


def check(form: Form, secret: str) -> None:
    assume(secret != MASK)
    argv = form(secret)
    context = "\0".join(form(""))
    assume(secret not in context)
    out, fired = REDACTOR.redact(argv)
    assert secret not in "\0".join(out)
    assert fired
    assert FULL.redact(argv) == (out, fired)


def check_exact(form: Form, secret: str) -> None:
    assume(hint_free(secret) and not option_like(secret))
    check(form, secret)
    assert REDACTOR.redact(form(secret))[0] == form(MASK)


flag_forms = st.sampled_from(FLAGS).flatmap(
    lambda name: st.sampled_from(
        [
            lambda v: ["app", f"--{name}={v}", "--verbose"],
            lambda v: ["app", f"--{name}", v, "-v"],
            lambda v: ["app", f"-{name}", v],
            lambda v: ["sh", "-c", f"app --{name} {v} && echo done"],
            lambda v: ["sh", "-c", f"app -{name}={v}; echo done"],
        ]
    )
)


@settings(max_examples=300)
@given(flag_forms, ANY_TEXT)
def test_flag_values_never_leak(form: Form, secret: str) -> None:
    if form("")[0] == "sh":
        assume(re.fullmatch(r"[^\s'\"\\;&|<>()`]+", secret) is not None)  # one unquoted shell word
    assume(not option_like(secret))
    check(form, secret)


@given(flag_forms, PLAIN)
def test_flag_values_are_masked_exactly(form: Form, secret: str) -> None:
    check_exact(form, secret)


@given(st.sampled_from(RUN_TOGETHER), PLAIN)
def test_run_together_flag_names_after_two_dashes(name: str, secret: str) -> None:
    check_exact(lambda v: ["app", f"--{name}", v], secret)
    check_exact(lambda v: ["app", f"-{name}={v}"], secret)


@given(st.sampled_from(FLAGS), PLAIN)
def test_a_quoted_value_in_a_script_is_masked_with_its_quotes(name: str, secret: str) -> None:
    quoted = f"'{secret} and more'"
    out, _ = REDACTOR.redact(["sh", "-c", f"app --{name} {quoted} | tee log"])
    assert out == ["sh", "-c", f"app --{name} {MASK} | tee log"]


name_forms = st.sampled_from(NAMES).flatmap(
    lambda name: st.sampled_from(
        [
            lambda v: ["env", f"{name}={v}", "run"],
            lambda v: ["docker", "build", f"--build-arg={name}={v}", "."],
        ]
    )
)


@settings(max_examples=200)
@given(name_forms, ANY_TEXT)
def test_secret_assignments_never_leak(form: Form, secret: str) -> None:
    check(form, secret)


@given(name_forms, PLAIN)
def test_secret_assignments_are_masked_exactly(form: Form, secret: str) -> None:
    check_exact(form, secret)


@given(st.sampled_from(NAMES), SHELL_WORD)
def test_assignments_in_scripts_never_leak(name: str, secret: str) -> None:
    check(lambda v: ["sh", "-c", f"export {name}={v}; ./run --verbose"], secret)


@given(st.sampled_from(["password", "token", "api_key", "client_secret", "passwd"]), PLAIN)
def test_json_fields_are_masked_exactly(name: str, secret: str) -> None:
    check_exact(lambda v: ["curl", "-d", json.dumps({"user": "u", name: v, "n": 1}), "https://x"], secret)


header_forms = st.sampled_from(HEADERS).flatmap(
    lambda header: st.sampled_from(
        [
            lambda v: ["curl", "-H", f"{header}{v}", "https://api.example.com"],
            lambda v: ["curl", f"--header={header}{v}"],
            lambda v: ["sh", "-c", f"curl -H '{header}{v}' https://x | jq ."],
            lambda v: ["sh", "-c", f'wget --header="{header}{v}" -O- https://x'],
        ]
    )
)


@settings(max_examples=200)
@given(header_forms, ANY_TEXT)
def test_header_credentials_never_leak(form: Form, secret: str) -> None:
    assume(not set(secret) & set("'\"\r\n"))  # a quote or line end ends a header value
    assume(secret.strip() == secret)  # and the scheme's blanks are not part of it
    check(form, secret)


@given(header_forms, PLAIN)
def test_header_credentials_are_masked_exactly(form: Form, secret: str) -> None:
    check_exact(form, secret)


@settings(max_examples=200)
@given(
    st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True),
    URL_PASSWORD,
    st.sampled_from(["https", "postgres", "redis"]),
)
def test_url_passwords_never_leak_and_the_user_stays(user: str, secret: str, scheme: str) -> None:
    def form(v: str) -> list[str]:
        return ["git", "clone", f"{scheme}://{user}:{v}@db.example.com:5432/app?x=1"]

    check(form, secret)
    assume(hint_free(secret))
    assert REDACTOR.redact(form(secret))[0] == form(MASK)


def shaped(prefix: str, alphabet: str, size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=size, max_size=size + 8).map(lambda body: prefix + body)


ALNUM = string.ascii_letters + string.digits
TOKENS = st.one_of(
    st.sampled_from(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]).flatmap(lambda p: shaped(p, ALNUM, 36)),
    shaped("github_pat_", ALNUM + "_", 82),
    shaped("glpat-", ALNUM + "-_", 20),
    st.sampled_from(["xoxb-", "xoxp-", "xoxa-", "xoxs-"]).flatmap(lambda p: shaped(p, ALNUM + "-", 24)),
    st.sampled_from(["AKIA", "ASIA"]).flatmap(
        lambda p: shaped(p, string.ascii_uppercase + string.digits, 16).map(lambda t: t[:20])
    ),
    st.tuples(*(st.text(ALNUM + "-_", min_size=10, max_size=40) for _ in range(3))).map(
        lambda p: f"eyJ{p[0]}.eyJ{p[1]}.{p[2]}"
    ),
    shaped("AIza", ALNUM + "-_", 35).map(lambda t: t[:39]),
    shaped("sk_live_", ALNUM, 24),
    shaped("npm_", ALNUM, 36).map(lambda t: t[:40]),
    shaped("pypi-AgEIcHlwaS5vcmc", ALNUM + "-_", 50),
)


@settings(max_examples=300)
@given(TOKENS, st.sampled_from(["{}", "x={}&y=1", "echo {} | gh auth login", "'{}'", "[{}]", "url?t={}"]))
def test_token_shapes_never_leak_wherever_they_sit(token: str, where: str) -> None:
    check(lambda v: ["sh", "-c", where.format(v)], token)
    check(lambda v: ["app", v, "--verbose"], token)


@given(
    st.text(string.ascii_letters + string.digits + "+/=\n", min_size=8, max_size=400),
    st.sampled_from(["RSA ", "EC ", "OPENSSH ", ""]),
)
def test_private_key_bodies_never_leak(body: str, kind: str) -> None:
    begin, end = f"-----BEGIN {kind}PRIVATE KEY-----", f"-----END {kind}PRIVATE KEY-----"
    check(lambda v: ["ssh-add", "-", f"{begin}{v}{end}"], body)
    assert REDACTOR.redact(["x", f"{begin}{body}{end}"])[0] == ["x", f"{begin}{MASK}{end}"]


cli_forms = st.sampled_from(
    [
        lambda v: ["mysql", "-uroot", f"-p{v}", "appdb"],
        lambda v: ["mariadb-dump", "-h", "db", f"-p{v}"],
        lambda v: ["sshpass", "-p", v, "ssh", "host", "uptime"],
        lambda v: ["redis-cli", "-h", "cache", "-a", v, "ping"],
        lambda v: ["curl", "-fsS", "-u", f"bob:{v}", "https://x"],
        lambda v: ["sh", "-c", f"mysqldump -uroot -p{v} app > dump.sql"],
        lambda v: ["sh", "-c", f"curl -u bob:{v} https://x && echo ok"],
        lambda v: ["docker", "login", "-u", "bot", "-p", v, "ghcr.io"],
        lambda v: ["sh", "-c", f"docker login -u bot -p {v} ghcr.io; docker push x"],
    ]
)


@given(cli_forms, SHELL_WORD)
def test_tool_passwords_never_leak(form: Form, secret: str) -> None:
    assume(":" not in secret or "curl" not in form("")[0])
    check(form, secret)


@given(cli_forms, PLAIN)
def test_tool_passwords_are_masked_exactly(form: Form, secret: str) -> None:
    check_exact(form, secret)


ARGV = st.lists(
    st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=60), max_size=8
)
WORDS = st.lists(
    st.one_of(
        ANY_TEXT,
        st.sampled_from(
            [
                "--password",
                "-H",
                "Authorization: Bearer x",
                "sh",
                "-c",
                "curl",
                "-u",
                "a:b",
                "TOKEN=1",
                "https://u:p@h/",
                "mysql",
                "-px",
                "ghp_" + "x" * 36,
            ]
        ),
    ),
    max_size=8,
)


@settings(max_examples=500)
@given(st.one_of(ARGV, WORDS))
def test_any_argv_only_loses_what_masks_cover(argv: list[str]) -> None:
    out, fired = REDACTOR.redact(argv)
    assert len(out) == len(argv)
    assert bool(fired) == (out != argv)
    for before, after in zip(argv, out, strict=True):
        if before != after:
            # The kept text is the original's, in order; each mask stands for at least one character.
            kept = after.split(MASK)
            assert re.fullmatch(".+?".join(map(re.escape, kept)), before, re.DOTALL), (before, after)
    assert REDACTOR.redact(out)[0] == out  # masking is idempotent
    assert FULL.redact(argv) == (out, fired)  # the prefilter never changes the outcome
