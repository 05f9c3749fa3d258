"""A real SMTP server on loopback, in its own process: aiosmtpd, as the city's mail server.

``python -m tests.standins.smtp --port P --maildir DIR [--refuse DOMAIN] [--tls CERT KEY]
[--login USER PASSWORD_FILE]`` accepts mail and writes each message to DIR as an
``.eml`` file; recipients at ``--refuse`` get ``550 5.1.1`` (a hard bounce). With
``--tls`` it offers STARTTLS; with ``--login`` it requires AUTH LOGIN/PLAIN, and
only after STARTTLS. Tests start it with :func:`smtp_server`, which waits until it
answers and stops it afterwards (or kills it, to play a server that is down).
"""

from __future__ import annotations

import argparse
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]


class _Handler:
    def __init__(self, maildir: Path, refuse: str | None) -> None:
        self.maildir = maildir
        self.refuse = refuse

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.refuse and address.lower().endswith("@" + self.refuse):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        path = self.maildir / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        path.write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted"


def main() -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", type=Path, required=True)
    parser.add_argument("--refuse")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--login", nargs=2, metavar=("USER", "PASSWORD_FILE"))
    args = parser.parse_args()
    options: dict[str, Any] = {}
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls[0], args.tls[1])
        options.update(tls_context=context, require_starttls=True)
    if args.login:
        user, password = args.login[0], Path(args.login[1]).read_text().strip()

        def authenticate(
            server: Any, session: Any, envelope: Any, mechanism: str, data: Any
        ) -> Any:
            ok = isinstance(data, LoginPassword) and (
                data.login.decode() == user and data.password.decode() == password
            )
            return AuthResult(success=ok, handled=False)  # the server answers 235 or 535

        options.update(authenticator=authenticate, auth_require_tls=bool(args.tls))
    controller = Controller(
        _Handler(args.maildir, args.refuse),
        hostname="127.0.0.1",
        port=args.port,
        server_hostname="localhost",
        **options,
    )
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    controller.stop()


@dataclass
class SmtpServer:
    port: int
    maildir: Path
    process: subprocess.Popen[bytes]
    ca_file: Path | None = None

    def messages(self) -> list[EmailMessage]:
        found = []
        for path in sorted(self.maildir.glob("*.eml")):
            message = message_from_bytes(path.read_bytes(), policy=policy.default)
            assert isinstance(message, EmailMessage)
            found.append(message)
        return found

    def kill(self) -> None:
        """Play a mail server that is down."""
        self.process.kill()
        self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tls_files(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (the test's own CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Fixed dates, not "now": OpenSSL checks them against the real clock, which the
        # clock-ahead run (time-machine) does not move.
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2100, 1, 1, tzinfo=UTC))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def smtp_server(
    folder: Path,
    *,
    refuse: str | None = None,
    tls: bool = False,
    login: tuple[str, Path] | None = None,
) -> Iterator[SmtpServer]:
    """The server in its own process on a free loopback port, until the block ends."""
    maildir = folder / "maildir"
    maildir.mkdir(exist_ok=True)
    port = free_port()
    command = [sys.executable, "-m", "tests.standins.smtp", "--port", str(port)]
    command += ["--maildir", str(maildir)]
    ca_file = None
    if refuse:
        command += ["--refuse", refuse]
    if tls:
        ca_file, key_file = tls_files(folder)
        command += ["--tls", str(ca_file), str(key_file)]
    if login:
        command += ["--login", login[0], str(login[1])]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            raise RuntimeError("the SMTP stand-in did not start")
        yield SmtpServer(port=port, maildir=maildir, process=process, ca_file=ca_file)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
