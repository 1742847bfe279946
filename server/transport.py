"""The listening side: TLS credentials (``--tls-cert``, ``--tls-key``, ``--tls-client-ca``) and
whether an address is loopback (a plaintext server refuses any other unless ``--insecure``)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

import grpc


class TransportError(ValueError):
    """A TLS file cannot be used; the message names the flag and the file."""


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the server's certificate chain and private key, and optionally the CA whose
    client certificates are accepted (then every client must present one: mTLS)."""

    cert: str
    key: str
    client_ca: str | None = None

    def read(self) -> tuple[bytes, bytes, bytes | None]:
        """(certificate chain, key, client CA or None); TransportError names a bad file."""
        cert = _pem("--tls-cert", self.cert, "CERTIFICATE")
        key = _pem("--tls-key", self.key, "PRIVATE KEY")
        client_ca = _pem("--tls-client-ca", self.client_ca, "CERTIFICATE") if self.client_ca else None
        return cert, key, client_ca

    def credentials(self) -> grpc.ServerCredentials:
        """Read at start (a restart picks up renewed certificates)."""
        cert, key, client_ca = self.read()
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=client_ca,
                                           require_client_auth=client_ca is not None)


def _pem(flag: str, path: str, kind: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise TransportError(f"{flag} {path}: cannot read it: {error.strerror or error}") from None
    if b"-----BEGIN " not in data or kind.encode() not in data:
        raise TransportError(f"{flag} {path}: not a PEM file with a {kind}")
    return data


def is_loopback(listen: str) -> bool:
    """Whether ``HOST:PORT`` binds loopback addresses only (127.0.0.0/8, ::1, a name that
    resolves to nothing else). An empty host, ``0.0.0.0``, ``[::]`` or an unresolvable name is
    not loopback; a Unix socket (``unix:PATH``) is local."""
    if listen.startswith(("unix:", "unix-abstract:")):
        return True
    host = listen.rpartition(":")[0] if ":" in listen else listen
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback
                               for info in infos)
