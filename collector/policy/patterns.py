"""The built-in redaction rules: what a secret on a command line looks like.

Each rule is a regex over the argv joined into one string, each argument preceded by a NUL
(``\\0ls\\0-la``), so one search covers every argument, a flag and its value in the next
argument are just ``--password\\0value``, and every argument starts right after a ``\\0``. No rule
crosses a NUL except where it means to. What a rule captures in a group named ``secret`` or
``secret_…`` is masked; the rest of the match stays readable (``--password=****``).

Three kinds of place are recognised:

- a whole argument: the value runs to the argument's end, spaces included
  (``env 'DB_PASSWORD=a b c'``);
- the next argument (``--token\\0value``);
- inside an argument that is a shell script (``sh -c 'curl --token x; …'``), where a value ends
  where the shell word ends: at unquoted blanks or ``;&|<>()``, with quotes part of the word.

Speed: Python's `re` scans quickly for a pattern's leading literal or character class, and tries
a pattern that starts any other way at every position. So every rule starts with a literal or a
small class (``-`` for flags, ``:`` for headers, a NUL or a shell separator for names) and checks
what comes before with a fixed-width lookbehind. ``hints`` are lower-case literals of which every
match contains at least one: a rule runs only on argvs that contain one of its hints, which most
argvs do not. The tests check every rule's examples against its hints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["BUILTIN_RULES", "Rule"]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    summary: str  # what it matches, in one line
    patterns: tuple[str, ...]  # verbose regexes over "\0" + "\0".join(argv); secret groups are masked
    hints: tuple[str, ...]  # lower-case literals; every match contains one of them
    # The patterns are written in lower case and run on the lower-cased text, where `re` can use
    # its literal fast paths (IGNORECASE disables them).
    folded: bool = False


def _after(words: tuple[str, ...], before: str = "", after: str = "") -> str:
    """Lookbehinds: the text so far ends with one of `words`, each between `before` and `after`."""
    return "(?:" + "|".join(f"(?<={before}{w}{after})" for w in words) + ")"


# Where a value ends inside a shell script: quoted parts belong to the word; an unterminated quote
# (a script cut at the argv cap) runs to the argument's end. A shell word always ends a pattern,
# so the greedy loop never has to backtrack.
_SHELL_WORD: Final = r"""(?:'[^'\0]*'?|"(?:[^"\\\0]|\\[^\0])*"?|\\[^\0]|[^\s'"\\;&|<>()`\0])+"""
_REST: Final = r"[^\0]+"  # the rest of this argument
_SCRIPT_SEP: Final = r"""[\s'"`;&|(){}=,]"""  # what may come before a word inside a script
# A value that is another option (`mysql --password -h db`: that --password prompts, and -h is
# not its value): a long option, a lone short option, or `--`. A password that looks like one of
# these is not masked; docs/policy.md says so.
_OPTION_ARG: Final = r"-(?:-[a-z]|[a-z](?![^\0])|-(?![^\0]))"
_OPTION_WORD: Final = r"""-(?:-[a-z]|[a-z](?![^\s\0'"])|-(?![^\s\0]))"""
# Values that name where a secret is, not the secret: `docker build --secret id=npmrc,src=…`,
# `openssl … -pass file:/run/secrets/x` (its `pass:x` form is masked), `--password stdin`.
_A_REFERENCE: Final = r"""(?:(?:id|type|src|source|target|file|env|fd)[=:]|stdin(?![^\s\0'"]))"""
_NAME_CHARS: Final = r"[a-z0-9_.-]"
_NOT_ALNUM: Final = "[^a-z0-9]"
_KEY_OWNERS: Final = ("api", "access", "secret", "client", "account", "master", "encryption", "signing",
                      "license", "auth")  # fmt: skip
_KEYS: Final = tuple(f"{owner}{sep}key" for owner in _KEY_OWNERS for sep in ("", "-", "_", r"\."))

# Flags: the last word of the name (words split at - _ .) names a secret. `--pass-through`,
# `--token-file` and `--password-stdin` end in other words and are left alone. Run-together names
# (--dbPassword, --clientSecret) count for `--` flags and `=` values only: a single-dash flag may
# carry its value attached (`mysql -psecret db`), and -psecret is not a flag named "psecret".
# Switches that only mention a secret take no value: `--no-password`, `--ask-vault-pass`.
_SWITCHES: Final = ("no", "skip", "disable", "without", "ask", "prompt", "allow", "require", "enable", "show",
                     "print", "ignore", "insecure", "use")  # fmt: skip
_SWITCH: Final = rf"(?!(?:{'|'.join(_SWITCHES)})[-_.])"
_FLAG_NAME: Final = rf"{_SWITCH}[a-z0-9]{_NAME_CHARS}*+"  # possessive: a name is never split
_LAST_WORD_SECRET: Final = "(?:" + "|".join((
    "(?<=pass)" + _after(("pass", "storepass", "keypass", "srcstorepass", "deststorepass", "srckeypass",
                          "destkeypass"), _NOT_ALNUM),
    _after(("password", "passwd", "passphrase", "passin", "passout", "token", "secret", "credential",
            "credentials", "creds"), _NOT_ALNUM),
    # A bare --auth takes a mode (`code-server --auth none`) or nothing (`mongod --auth`).
    "(?<=auth)" + _after(tuple(f"{kind}{sep}auth" for kind in ("basic", "http", "proxy")
                               for sep in ("", "-", "_", r"\.")), _NOT_ALNUM),
    "(?<=key)" + _after(_KEYS, _NOT_ALNUM),
)) + ")"  # fmt: skip
_ENDS_RUN_TOGETHER: Final = _after(("password", "passwd", "passphrase", "token", "secret"))
# The character after the name picks the form, so the name is checked once per candidate.
# (?(long)...) allows run-together names after `--` only.
_SECRET_FLAG: Final = rf"""
-(?:
    (?<=\0-)(?P<long>-)?{_FLAG_NAME}
    (?:
        (?==)(?:{_LAST_WORD_SECRET}|{_ENDS_RUN_TOGETHER})=(?!{_A_REFERENCE})(?P<secret>{_REST})
      | (?=\0)(?:{_LAST_WORD_SECRET}|(?(long){_ENDS_RUN_TOGETHER}|(?!)))
        \0(?!{_OPTION_ARG}|{_A_REFERENCE})(?P<secret_next>{_REST})
    )
  | (?<={_SCRIPT_SEP}-)(?P<long_in_script>-)?{_FLAG_NAME}
    (?:
        (?==)(?:{_LAST_WORD_SECRET}|{_ENDS_RUN_TOGETHER})=
      | (?=[ \t])(?:{_LAST_WORD_SECRET}|(?(long_in_script){_ENDS_RUN_TOGETHER}|(?!)))[ \t]+(?!{_OPTION_WORD})
    )
    (?!{_A_REFERENCE})(?P<secret_script>{_SHELL_WORD})
)
"""

# Variable and key names: any whole word names a secret (AWS_SECRET_ACCESS_KEY, SECRET_KEY_BASE,
# PGPASSWORD, db.password), unless the last word says the value is about a secret but is not one
# (POSTGRES_PASSWORD_FILE, TOKEN_URL, AWS_ACCESS_KEY_ID, whose id is caught by its own shape).
# PASS and PWD count only as the last word, PWD only after another word (PWD is the working dir).
# Cheap checks first: most candidates are not followed by = at all.
_ANY_WORD_SECRET: Final = rf"""(?={_NAME_CHARS}*?(?:
      (?:pass(?:word|wd)|token)(?![a-z0-9])
    | (?<![a-z0-9])(?:passphrase|secrets?|creds|apikey
        |(?:{"|".join(_KEY_OWNERS)}|private|session)[-_.]?key)(?![a-z0-9])
    | (?<![a-z0-9])pass(?![a-z0-9_.-])
    | (?<=[-_.])pwd(?![a-z0-9_.-])
))"""
_NOT_A_SECRET_TAIL: Final = "".join(
    rf"(?<![-_.]{tail})"
    for tail in (
        "file", "path", "dir", "directory", "url", "uri", "id", "name", "type", "length", "len", "size",
        "count", "ttl", "timeout", "endpoint", "enabled", "required", "mode", "format", "header", "prefix",
    )
)  # fmt: skip
# The argument after `sh -c` is a script: `sh -c 'TOKEN=x run'` masks x, not `x run`.
_SCRIPT_FLAG: Final = "".join(rf"(?<!\0-{flags}\0)" for flags in ("c", "lc", "ec", "ic", "xc", "ce"))
_NAME: Final = rf"{_ANY_WORD_SECRET}[a-z0-9_]{_NAME_CHARS}*+{_NOT_A_SECRET_TAIL}"
_SECRET_ASSIGNMENT: Final = rf"""
[\0\s'"`;&|(){{}}=,](?=[a-z0-9_]{_NAME_CHARS}*+(?:=|["'][ \t]*:))(?:
    (?<=\0){_SCRIPT_FLAG}{_NAME}=(?P<secret>{_REST})
  | {_NAME}=(?P<secret_script>{_SHELL_WORD})
  | (?<=["']){_NAME}["'][ \t]*:[ \t]*
    (?:"(?P<secret_json>(?:[^"\\\0]|\\[^\0])+)"|'(?P<secret_json1>[^'\0]+)'|(?P<secret_json2>[^\s,}}\]'"\0]+))
)
"""
# --build-arg=NPM_TOKEN=value as one argument: the value runs to the argument's end.
_FLAG_THEN_ASSIGNMENT: Final = rf"\0--?[a-z0-9][\w.-]*=(?={_NAME_CHARS}+=){_NAME}=(?P<secret>{_REST})"

# HTTP headers that carry credentials, found from their colon. The scheme (Bearer, Basic, ...)
# stays readable. Also the JSON form, "Authorization": "Bearer ...".
_HEADERS: Final = (
    "authorization", "proxy-authorization", "x-api-key", "api-key", "apikey", "x-auth-token",
    "private-token", "job-token", "x-vault-token", "x-access-token", "cookie",
)  # fmt: skip
_HEADER_BEFORE_COLON: Final = "|".join(
    f"(?<={before}{name}{quote}:)"
    for name in _HEADERS
    for before in (r"[^\w-]", "-h")
    for quote in ("", "[\"']")
)
_AUTH_HEADER: Final = rf"""
:(?:{_HEADER_BEFORE_COLON})[ \t]*["']?
(?:(?:bearer|basic|token|digest|negotiate|ntlm|apikey|aws4-hmac-sha256|sso-key)[ \t]+)?
(?P<secret>[^\0'"\r\n]+)
"""

# Token shapes (case matters). Each starts with its literal prefix and looks behind that for a
# word boundary.
_TOKEN_SHAPES: Final = {
    "github-token": (
        r"gh[pousr]_(?<=[^A-Za-z0-9_]gh[pousr]_)[A-Za-z0-9]{20,}",
        r"github_pat_(?<=[^A-Za-z0-9_]github_pat_)[A-Za-z0-9_]{20,}",
    ),
    "gitlab-token": (
        r"gl(?<=[^A-Za-z0-9_-]gl)(?:pat|dt|rt|ptt|ft|cbt|imt|oas|soat|agent)-[A-Za-z0-9_-]{20,}",
    ),
    "slack-token": (
        r"xox(?<=[^A-Za-z0-9]xox)[abposre]-[A-Za-z0-9-]{10,}",
        r"xapp-(?<=[^A-Za-z0-9]xapp-)[0-9]-[A-Za-z0-9-]{10,}",
    ),
    "aws-access-key-id": (r"A(?<=[^A-Z0-9]A)(?:KIA|SIA|BIA|CCA)[A-Z0-9]{16}(?![A-Z0-9])",),
    "jwt": (r"eyJ(?<=[^A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*",),
    "google-api-key": (r"AIza(?<=[^A-Za-z0-9_-]AIza)[0-9A-Za-z_-]{35}",),
    "stripe-key": (
        r"sk_live_(?<=[^A-Za-z0-9]sk_live_)[0-9A-Za-z]{16,}",
        r"rk_live_(?<=[^A-Za-z0-9]rk_live_)[0-9A-Za-z]{16,}",
    ),
    "npm-token": (r"npm_(?<=[^A-Za-z0-9_]npm_)[A-Za-z0-9]{36}",),
    "pypi-token": (r"pypi-(?<=[^A-Za-z0-9_-]pypi-)AgEIcHlwaS5vcmc[A-Za-z0-9_-]{16,}",),
}
_TOKEN_HINTS: Final = {
    "github-token": ("gh", "github_pat_"),
    "gitlab-token": ("gl",),
    "slack-token": ("xox", "xapp-"),
    "aws-access-key-id": ("akia", "asia", "abia", "acca"),
    "jwt": ("eyj",),
    "google-api-key": ("aiza",),
    "stripe-key": ("k_live_",),
    "npm-token": ("npm_",),
    "pypi-token": ("pypi-",),
}
_TOKEN_SUMMARIES: Final = {
    "github-token": "GitHub tokens: ghp_, gho_, ghu_, ghs_, ghr_ and github_pat_ followed by 20+ characters",
    "gitlab-token": "GitLab tokens: glpat-, gldt-, glrt-, glptt- and other gl…- prefixes, 20+ characters",
    "slack-token": "Slack tokens: xoxb-, xoxp-, xoxa-, xoxo-, xoxs-, xoxr-, xoxe- and xapp-",
    "aws-access-key-id": "AWS access key ids: AKIA, ASIA, ABIA or ACCA and 16 upper-case letters or digits",
    "jwt": "JSON web tokens: eyJ….eyJ….signature",
    "google-api-key": "Google API keys: AIza and 35 characters",
    "stripe-key": "Stripe live secret and restricted keys: sk_live_…, rk_live_…",
    "npm-token": "npm tokens: npm_ and 36 characters",
    "pypi-token": "PyPI upload tokens: pypi-AgEIcHlwaS5vcmc…",
}
_ANY_TOKEN: Final = "|".join(f"(?:{shape})" for shapes in _TOKEN_SHAPES.values() for shape in shapes)

# scheme://user:password@host: the password is masked and the user kept (who connected is worth
# logging), unless the user is itself a token (https://ghp_…:x-oauth-basic@github.com) or a long
# opaque string with no password (https://<40 hex digits>@github.com).
_URL_CREDENTIALS: Final = rf"""
://(?:
    (?:(?P<secret_user>{_ANY_TOKEN})|[^\s/?#@:'"\0]*):(?P<secret>[^\s/?#'"\0]+)@
  | (?P<secret_opaque>[A-Za-z0-9_-]{{32,}})@
)
"""

_PRIVATE_KEY: Final = r"""
-----BEGIN[A-Z0-9 ]{0,40}PRIVATE\ KEY(?:\ BLOCK)?-----
(?P<secret>[^\0]+?)(?=-----END[A-Z0-9 ]{0,40}PRIVATE\ KEY|\0|\Z)
"""
_SLACK_WEBHOOK: Final = r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[A-Za-z0-9_/-]{8,})"

# Tools with a password option of their own. As argv, the program is argv[0]. In a script, the
# program's name starts a command and the option comes before the next ; & | or newline, looked
# for over at most 400 characters so that a long script costs linear time.
_MYSQL: Final = r"(?:mysql(?:dump|admin|import|show|check)?|mariadb[a-z-]*)"
_REGISTRY_CLIENT: Final = r"(?:docker|podman|nerdctl|buildah)"
_AFTER_REGISTRY_CLIENT: Final = _after(("docker", "podman", "nerdctl", "buildah"), after=r"[ \t]login")
_PROGRAM: Final = r"\A\0(?:[^\0]*/)?"
_CMD_START: Final = r"""[\s;&|(`'"\0/]"""
_CLI_PASSWORD: Final = (
    rf"{_PROGRAM}{_MYSQL}\0(?:[^\0]*\0)*?-p(?P<secret>{_REST})",
    rf"{_PROGRAM}sshpass\0(?:-P\0[^\0]*\0|-[^p\0][^\0]*\0)*-p\0?(?P<secret>{_REST})",
    rf"{_PROGRAM}redis-cli\0(?:[^\0]*\0)*?-a\0(?P<secret>{_REST})",
    rf"{_PROGRAM}curl\0(?:[^\0]*\0)*?(?:-[uU]\0?|--(?:proxy-)?user[=\0])[^:\0]*:(?P<secret>{_REST})",
    rf"{_PROGRAM}{_REGISTRY_CLIENT}\0(?:[^\0]*\0)*?login\0(?:[^\0]*\0)*?-p\0?(?P<secret>{_REST})",
    rf"""m(?<={_CMD_START}m)(?:ysql(?:dump|admin|import|show|check)?|ariadb[a-z-]*)(?=\s)
         [^;&|\n\0]{{0,400}}?\s-p(?P<secret>{_SHELL_WORD})""",
    rf"""login(?=\s){_AFTER_REGISTRY_CLIENT}
         [^;&|\n\0]{{0,400}}?\s-p[ \t]*(?P<secret>{_SHELL_WORD})""",
    rf"""c(?<={_CMD_START}c)url(?=\s)[^;&|\n\0]{{0,400}}?\s(?:-[uU][ \t]*|--(?:proxy-)?user[=\s]+)
         ['"]?[^:\s\0'"]*:(?P<secret>[^\s\0'"]+)""",
)

BUILTIN_RULES: Final[tuple[Rule, ...]] = (
    Rule(
        "private-key",
        "the body of a PEM private key block (-----BEGIN … PRIVATE KEY-----)",
        (_PRIVATE_KEY,),
        ("key",),  # "private key" holds it
    ),
    Rule(
        "cli-password",
        "password options of mysql/mariadb (-pSECRET), sshpass (-p), redis-cli (-a), curl (-u user:SECRET), "
        "docker/podman/nerdctl/buildah login (-p)",
        _CLI_PASSWORD,
        ("mysql", "mariadb", "pass", "redis-cli", "curl", "login"),  # "pass" for sshpass
    ),
    Rule(
        "secret-flag",
        "the value of a flag whose name's last word is password, passwd, pass, passphrase, passin, passout, "
        "storepass, keypass, token, secret, api/access/secret/client/…-key, credential(s), creds or "
        "basic/http/proxy-auth: --password=x, --db-password x, -storepass x, --clientSecret=x",
        (_SECRET_FLAG,),
        ("pass", "token", "secret", "key", "cred", "auth"),
        folded=True,
    ),
    Rule(
        "secret-assignment",
        'NAME=value and "name": "value" where a word of NAME names a secret: '
        "AWS_SECRET_ACCESS_KEY=…, GITHUB_TOKEN=…, DB_PASSWORD=…, db.password=…",
        (_SECRET_ASSIGNMENT, _FLAG_THEN_ASSIGNMENT),
        ("pass", "pwd", "token", "secret", "key", "cred"),
        folded=True,
    ),
    Rule(
        "auth-header",
        "credentials in Authorization, Proxy-Authorization, Cookie, X-API-Key and token headers",
        (_AUTH_HEADER,),
        ("auth", "key", "token", "cookie"),
        folded=True,
    ),
    Rule(
        "url-credentials",
        "the password in scheme://user:password@host, and a token used as the user",
        (_URL_CREDENTIALS,),
        ("://",),
    ),
    Rule("slack-webhook", "the secret path of a Slack webhook URL", (_SLACK_WEBHOOK,), ("slack",)),
    *(
        Rule(
            name,
            _TOKEN_SUMMARIES[name],
            tuple(f"(?P<secret>{shape})" for shape in shapes),
            _TOKEN_HINTS[name],
        )
        for name, shapes in _TOKEN_SHAPES.items()
    ),
)
