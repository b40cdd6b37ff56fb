"""A real rsyslogd (Debian's) on loopback, as a syslog receiver for audit delivery tests.

It runs in the foreground (``-n``) with its own config, pid file and work directory, and listens on
plain TCP, TLS (the gtls driver, RFC 5425) and UDP, all on loopback, writing every raw message it
receives, one per line, to ``messages_path``. Stopping and starting it again keeps the ports and
appends to the same file, so a test can take the receiver down in the middle of a delivery stream.
Debian packages: ``rsyslog`` and ``rsyslog-gnutls`` (the TLS driver).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from kubejit.testing.certs import write_certificates
from kubejit.testing.processes import LOOPBACK, free_port, log_tail

RSYSLOGD_CANDIDATES = ("/usr/sbin/rsyslogd", "/sbin/rsyslogd")


def find_rsyslogd() -> str:
    """The rsyslogd binary; a clear message when the Debian packages are missing."""
    for candidate in (shutil.which("rsyslogd"), *RSYSLOGD_CANDIDATES):
        if candidate and Path(candidate).exists():
            return candidate
    raise FileNotFoundError("rsyslogd not found: install the Debian packages rsyslog and rsyslog-gnutls")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RsyslogReceiver:
    """rsyslogd listening on ``tcp_port`` (plain), ``tls_port`` (TLS) and ``udp_port`` on 127.0.0.1."""

    workdir: Path
    tcp_port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    udp_port: int = field(default_factory=_free_udp_port)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "spool").mkdir(exist_ok=True)
        self.certs = write_certificates(self.workdir / "pki", cluster_name="rsyslog")

    @property
    def ca_path(self) -> Path:
        """The CA that signed the receiver's TLS certificate (valid for 127.0.0.1 and localhost)."""
        return self.certs.ca_cert

    @property
    def messages_path(self) -> Path:
        return self.workdir / "messages.log"

    @property
    def log_path(self) -> Path:
        return self.workdir / "rsyslogd.log"

    def write_config(self) -> Path:
        spool, certs = self.workdir / "spool", self.certs
        config = f"""
global(workDirectory="{spool}"
       defaultNetstreamDriverCAFile="{certs.ca_cert}"
       defaultNetstreamDriverCertFile="{certs.serving_cert}"
       defaultNetstreamDriverKeyFile="{certs.serving_key}"
       maxMessageSize="64k")
module(load="imtcp" maxSessions="100")
module(load="imudp")
input(type="imtcp" address="{LOOPBACK}" port="{self.tcp_port}")
input(type="imtcp" address="{LOOPBACK}" port="{self.tls_port}"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imudp" address="{LOOPBACK}" port="{self.udp_port}")
template(name="raw" type="string" string="%rawmsg%\\n")
action(type="omfile" file="{self.messages_path}" template="raw" flushOnTXEnd="on" asyncWriting="off")
"""
        path = self.workdir / "rsyslog.conf"
        path.write_text(config)
        return path

    def start(self, *, timeout: float = 30) -> RsyslogReceiver:
        config = self.write_config()
        args = [find_rsyslogd(), "-n", "-f", str(config), "-i", str(self.workdir / "rsyslogd.pid")]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, close_fds=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rsyslogd exited {self.process.returncode}: {log_tail(self.log_path)}")
            if _listening(self.tcp_port) and _listening(self.tls_port) and _udp_bound(self.udp_port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"rsyslogd did not listen within {timeout}s: {log_tail(self.log_path)}")

    def stop(self) -> None:
        """SIGTERM (rsyslogd flushes its queue and closes the file), SIGKILL after 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def messages(self) -> list[str]:
        """Every raw syslog message received so far, in arrival order."""
        if not self.messages_path.exists():
            return []
        return [line for line in self.messages_path.read_text().splitlines() if line]


def _udp_bound(port: int) -> bool:
    """Whether a UDP socket is bound to ``port`` (from /proc/net/udp: a datagram gives no answer)."""
    try:
        table = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return True  # no procfs: the TCP listeners start together with it
    return any(line.split()[1].endswith(f":{port:04X}") for line in table if len(line.split()) > 1)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False
