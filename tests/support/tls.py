"""Throw-away X.509 material for tests that speak TLS: a CA, and server certificates it signs.

Everything is made at test time with the `openssl` command-line tool, into a directory the caller
owns, so no key ever lands in git and nothing depends on the `cryptography` package (which the
`kubernetes` client does not pull in). Keys are P-256 EC: generating one takes milliseconds, where
RSA would make every test that needs a fresh CA noticeably slower.

The certificates satisfy OpenSSL's strict X.509 checks (`ssl.VERIFY_X509_STRICT`, on by default
from Python 3.13): the CA has a critical basicConstraints and keyCertSign, the server certificate
carries subjectAltName, extendedKeyUsage serverAuth and an authorityKeyIdentifier.

`issue_client_cert` makes the client's side of mTLS (extendedKeyUsage clientAuth).

    ca = CertificateAuthority.create(tmp_path / "ca", "test-ca")
    cert = ca.issue_server_cert(tmp_path / "srv", "kubelet")       # 127.0.0.1 and localhost
    ctx = ssl.create_default_context(cafile=ca.cert_file)          # a client that trusts ca
"""

from __future__ import annotations

import ipaddress
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_HOSTS",
    "CertificateAuthority",
    "ServerCert",
    "self_signed_server_cert",
]

# What a client on loopback may call the server; both forms, because clients differ in which one
# they put in the URL and Python checks IP SANs and DNS SANs separately.
DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost")

# Long enough for any test run, short enough that a leaked key is worthless.
_DAYS = 2

# A private configuration, so the result does not depend on the distribution's openssl.cnf (which
# may add its own extensions and then collide with ours).
_CONFIG = """\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = unused

[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = @alt

[v3_client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[alt]
"""


@dataclass(frozen=True, slots=True)
class ServerCert:
    """A server's certificate chain and key, and the CA certificate a client must trust for it."""

    cert_file: Path
    key_file: Path
    ca_file: Path
    hosts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    name: str
    cert_file: Path
    key_file: Path

    @classmethod
    def create(cls, directory: Path, name: str) -> CertificateAuthority:
        directory.mkdir(parents=True, exist_ok=True)
        config = _write_config(directory, name, ())
        cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
        try:
            _openssl(
                "req", "-x509", "-new", *_EC_KEY, "-nodes", "-sha256", "-days", str(_DAYS),
                "-subj", f"/CN={name}", "-set_serial", _serial(),
                "-config", str(config), "-extensions", "v3_ca",
                "-keyout", str(key_file), "-out", str(cert_file),
            )  # fmt: skip
        finally:
            config.unlink()
        return cls(name=name, cert_file=cert_file, key_file=key_file)

    def issue_server_cert(
        self, directory: Path, name: str, hosts: Sequence[str] = DEFAULT_HOSTS
    ) -> ServerCert:
        """A serving certificate for `hosts` (IP addresses and DNS names), signed by this CA.

        Issue one for a name the client does not dial (say `node-1.cluster.local`) to test that
        the client checks the host name, not only the chain.
        """
        if not hosts:
            raise ValueError("a server certificate needs at least one host")
        return self._issue(directory, name, tuple(hosts), "v3_server")

    def issue_client_cert(self, directory: Path, name: str) -> ServerCert:
        """A client certificate (extendedKeyUsage clientAuth, CN=name) for mTLS, signed by this CA.

        Returned as a ServerCert for its fields: the chain, the key, and this CA's certificate."""
        return self._issue(directory, name, (), "v3_client")

    def _issue(self, directory: Path, name: str, hosts: tuple[str, ...], extensions: str) -> ServerCert:
        directory.mkdir(parents=True, exist_ok=True)
        config = _write_config(directory, name, hosts)
        cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
        csr = directory / f"{name}.csr"
        try:
            _openssl(
                "req", "-new", *_EC_KEY, "-nodes", "-subj", f"/CN={name}", "-config", str(config),
                "-keyout", str(key_file), "-out", str(csr),
            )  # fmt: skip
            _openssl(
                "x509", "-req", "-in", str(csr), "-sha256", "-days", str(_DAYS), "-set_serial", _serial(),
                "-CA", str(self.cert_file), "-CAkey", str(self.key_file),
                "-extfile", str(config), "-extensions", extensions, "-out", str(cert_file),
            )  # fmt: skip
        finally:
            config.unlink()
            csr.unlink(missing_ok=True)
        return ServerCert(cert_file=cert_file, key_file=key_file, ca_file=self.cert_file, hosts=hosts)


def self_signed_server_cert(directory: Path, name: str, hosts: Sequence[str] = DEFAULT_HOSTS) -> ServerCert:
    """A certificate made the way a kubelet without a configured serving certificate makes one.

    Such a kubelet creates its own CA (`<host>-ca@<unix time>`), signs its serving certificate with
    it, writes the chain into its .crt, and keeps the CA nowhere a client could find it. So the
    served chain verifies only for a client that was handed this particular `ca_file`.
    """
    ca = CertificateAuthority.create(directory, f"{name}-ca")
    issued = ca.issue_server_cert(directory, name, hosts)
    chain = issued.cert_file.read_bytes() + ca.cert_file.read_bytes()
    issued.cert_file.write_bytes(chain)
    # The CA's key has done its one job; dropping it is what makes the chain "self-signed".
    ca.key_file.unlink()
    return issued


_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")


def _serial() -> str:
    # Positive and at most 20 octets, as RFC 5280 asks; random so two CAs never share a serial.
    return "0x" + secrets.token_hex(16)


def _write_config(directory: Path, name: str, hosts: Sequence[str]) -> Path:
    lines = [_CONFIG]
    ips = dns = 0
    for host in hosts:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            dns += 1
            lines.append(f"DNS.{dns} = {host}\n")
        else:
            ips += 1
            lines.append(f"IP.{ips} = {host}\n")
    path = directory / f"{name}.openssl.cnf"
    path.write_text("".join(lines))
    return path


def _openssl(*args: str) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise RuntimeError(
            "the openssl command is needed to make test certificates (apt-get install openssl)"
        )
    result = subprocess.run([binary, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed ({result.returncode}): {result.stderr.strip()}")
