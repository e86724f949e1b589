"""The kubelet's `GET /pods` over HTTPS, with the service account's bearer token.

The kubelet lists exactly the pods bound to its node, with their container ids, which is what
attribution needs, and it answers from memory: no load on the API server however many nodes run
the collector. Authentication is the pod's service-account token, authorised by the API server
through the kubelet's webhook (RBAC: `get` on `nodes/pods`, or `nodes/proxy` before 1.33).

The token file is read again whenever it changes (projected tokens are rewritten before they
expire). Each failure is a :class:`KubeletError` whose `kind` lets the caller log a new kind of
failure once rather than every poll.
"""

from __future__ import annotations

import http.client
import logging
import os
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from kubernetes.client import V1PodList

__all__ = ["KubeletClient", "KubeletError", "check_kubelet_url"]

log = logging.getLogger("execlog.kubelet")

_MAX_BODY: Final = 256 << 20  # a node's PodList is a few MiB at most; more is not a kubelet
_USER_AGENT: Final = "execlog/0.1"


class KubeletError(Exception):
    """One failed poll. `kind`: unreachable, token, unauthorized, forbidden, status, malformed."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def check_kubelet_url(url: str) -> str:
    """Validate a kubelet base URL (``https://host:port[/prefix]``); ValueError says why not."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(
            f"{url!r} is not an https://HOST:PORT URL (the kubelet API is HTTPS, usually port 10250)"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r}: a kubelet URL has no query or fragment")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"{url!r}: {exc}") from exc
    return url.rstrip("/")


class KubeletClient:
    """Blocking; used only from the watcher's thread."""

    def __init__(self, url: str, token_file: Path, ca_file: Path | None, *, timeout: float = 10.0) -> None:
        """`ca_file` None skips TLS verification (--kubelet-insecure-skip-tls-verify)."""
        parts = urlsplit(check_kubelet_url(url))
        assert parts.hostname is not None
        self.url = url.rstrip("/")
        self._host, self._port = parts.hostname, parts.port or 10250
        self._path = parts.path.rstrip("/") + "/pods"
        self._token_file = token_file
        self._token = ""
        self._token_stat: tuple[int, int, int] | None = None
        self._timeout = timeout
        self._context = _tls_context(ca_file)
        self._conn: http.client.HTTPSConnection | None = None
        # Imported here, at start, not at the first poll: importing the models takes most of a
        # second, which the first execs' pending wait should not have to absorb.
        from kubernetes.client import ApiClient

        self._api: ApiClient = ApiClient()

    def pods(self) -> V1PodList:
        """One GET /pods, deserialised with the kubernetes package's models."""
        token = self._read_token()
        status, body = self._get(token)
        if status == 401:
            raise KubeletError(
                "unauthorized",
                f"401 Unauthorized: the kubelet refused the token in {self._token_file} "
                "(wrong or expired token, or the kubelet's webhook authentication is off)",
            )
        if status == 403:
            raise KubeletError(
                "forbidden",
                f"403 Forbidden: {_snippet(body)}; the service account needs get on nodes/pods "
                "(nodes/proxy before Kubernetes 1.33): see manifests/rbac.yaml",
            )
        if status != 200:
            raise KubeletError("status", f"HTTP {status} from GET {self._path}: {_snippet(body)}")
        return self._decode(body)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _read_token(self) -> str:
        try:
            st = os.stat(self._token_file)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            if key != self._token_stat:
                token = self._token_file.read_text(encoding="utf-8").strip()
                if self._token_stat is not None:
                    log.info("kubelet token file %s changed; using the new token", self._token_file)
                self._token, self._token_stat = token, key
        except OSError as exc:
            self._token_stat = None
            raise KubeletError("token", f"cannot read token file {self._token_file}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            self._token_stat = None
            raise KubeletError("token", f"token file {self._token_file} is not text") from exc
        if not self._token:
            raise KubeletError("token", f"token file {self._token_file} is empty")
        return self._token

    def _get(self, token: str) -> tuple[int, bytes]:
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }
        # One retry on a fresh connection: a kept-alive one may have been closed by the kubelet.
        for attempt in (1, 2):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=self._context
                )
            try:
                self._conn.request("GET", self._path, headers=headers)
                response = self._conn.getresponse()
                length = response.getheader("Content-Length")
                if length is not None and length.isdigit() and int(length) > _MAX_BODY:
                    self.close()
                    raise KubeletError("malformed", f"a PodList of {length} bytes is beyond {_MAX_BODY}")
                body = response.read(_MAX_BODY + 1)
                if len(body) > _MAX_BODY:
                    self.close()
                    raise KubeletError("malformed", f"a PodList of more than {_MAX_BODY} bytes")
                if response.will_close:
                    self.close()
                return response.status, body
            except ssl.SSLError as exc:
                self.close()
                raise KubeletError("tls", f"TLS with {self._host}:{self._port} failed: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused and attempt == 1:
                    continue
                raise KubeletError(
                    "unreachable", f"cannot reach the kubelet at {self.url}: {_describe(exc)}"
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _decode(self, body: bytes) -> V1PodList:
        try:
            text = body.decode("utf-8")
            podlist: V1PodList = self._api.deserialize(text, "V1PodList", "application/json")
        except (ValueError, TypeError) as exc:  # JSON, UTF-8 and pydantic validation errors
            raise KubeletError(
                "malformed", f"the kubelet's answer is not a PodList: {_first_line(exc)}"
            ) from exc
        if podlist is None or podlist.items is None:
            raise KubeletError("malformed", "the kubelet's answer is not a PodList: no items")
        return podlist


def _tls_context(ca_file: Path | None) -> ssl.SSLContext:
    if ca_file is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"kubelet CA file {ca_file}: {getattr(exc, 'strerror', None) or exc}") from exc


def _snippet(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip().replace("\n", " ")
    return text[:200] + ("…" if len(text) > 200 else "") if text else "(empty body)"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return " ".join(line.strip() for line in lines[:3])[:300] if lines else type(exc).__name__


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
