"""How a client command (report, promote, simulate, evaluate --promote-if-better) reaches a
server with TLS and a token: the shared flags and the :class:`~arbiter.client.Connection`."""

from __future__ import annotations

import argparse
import os

from arbiter.client import Connection

TOKEN_VARIABLE = "ARBITER_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection (README: Security and privacy)")
    group.add_argument("--token-file", metavar="FILE",
                       help=f"file holding the bearer token (default: ${TOKEN_VARIABLE})")
    group.add_argument("--tls", action="store_true",
                       help="connect with TLS, trusting the system's CAs (implied by --tls-ca)")
    group.add_argument("--tls-ca", metavar="PEM", help="CA certificate(s) to verify the server")
    group.add_argument("--tls-cert", metavar="PEM", help="client certificate (mTLS)")
    group.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")


def from_args(args: argparse.Namespace) -> Connection:
    """The token from ``--token-file`` (else ``$ARBITER_TOKEN``; never a flag, which ``ps`` would
    show) and the TLS files."""
    token = os.environ.get(TOKEN_VARIABLE) or None
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as file:
            token = file.read().strip()
    return Connection(token=token, tls=args.tls, ca_file=args.tls_ca, cert_file=args.tls_cert,
                      key_file=args.tls_key)
