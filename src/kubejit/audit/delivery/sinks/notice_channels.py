"""Channel transports: one POST (JSON webhook, Slack, Teams) or one SMTP message per recipient.

Each runs on its channel's delivery worker thread (never on the event loop, never inside a grant
operation), so the blocking clients (httpx, smtplib) are the simple choice. A failure raises
``SinkUnavailable`` and the delivery worker sends again with backoff. Error texts name the channel
and what failed, never the URL (a Slack or Teams URL is the credential), a header or a password.
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any, Protocol

import httpx

from kubejit.audit.delivery.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from kubejit.errors import SinkUnavailable
from kubejit.notify import formats
from kubejit.notify.message import Notice

log = logging.getLogger(__name__)

EVENT_ID_HEADER = "X-Kubejit-Event-Id"
#: Answers that refuse this one message, not the channel: sending it again cannot help, and retrying
#: it forever would hold up every later notice. It is logged and skipped. (401/403/404: the URL or
#: the key is wrong, which fixing the config cures: those are retried.)
POISON_STATUSES = frozenset({400, 413, 422})
#: Recipients already sent to, remembered per email channel so a retried notice skips them.
REMEMBERED = 4096


class Channel(Protocol):
    name: str
    #: Whether ``send`` needs recipient addresses (email) or posts once (webhooks).
    addressed: bool

    def send(self, notice: Notice, *, event_id: str, to: Sequence[str]) -> None: ...

    def close(self) -> None: ...


def _verify(ca_file: Path | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=str(ca_file)) if ca_file is not None else True


class _HttpChannel:
    addressed = False
    kind = "webhook"

    def __init__(self, name: str, *, url: str, timeout: float, ca_file: Path | None) -> None:
        self.name = name
        self._url = url
        self._client = httpx.Client(timeout=timeout, verify=_verify(ca_file), follow_redirects=False)

    def _post(self, body: bytes, headers: dict[str, str], *, event_id: str) -> None:
        try:
            response = self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as e:
            raise SinkUnavailable(
                f"notification channel {self.name}: the {self.kind} POST failed: {type(e).__name__}",
                hint="Is the receiver up? The notice is sent again with backoff.",
            ) from None
        if response.status_code in POISON_STATUSES:
            log.error(
                "notification channel %s: the %s receiver refused the notice of event %s (%d); not sent again",
                self.name, self.kind, event_id, response.status_code,
            )  # fmt: skip
            return
        if not response.is_success:
            raise SinkUnavailable(
                f"notification channel {self.name}: the {self.kind} receiver answered {response.status_code}",
                hint="A 401/403/404 means the receiver refused the signature or the URL: check the secret.",
            )

    def close(self) -> None:
        self._client.close()


class WebhookChannel(_HttpChannel):
    """The generic JSON body, signed like the audit webhook (``X-Kubejit-Signature``)."""

    def __init__(
        self,
        name: str,
        *,
        url: str,
        key: bytes,
        timeout: float = 10,
        ca_file: Path | None = None,
        unix_time: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name, url=url, timeout=timeout, ca_file=ca_file)
        self._key = key
        self._unix_time = unix_time

    def send(self, notice: Notice, *, event_id: str, to: Sequence[str]) -> None:
        body = formats.json_message(notice, event_id=event_id).encode()
        timestamp = int(self._unix_time())
        self._post(
            body,
            {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign(self._key, timestamp=timestamp, body=body),
                EVENT_ID_HEADER: event_id,
            },
            event_id=event_id,
        )


class _JsonChannel(_HttpChannel):
    render: Callable[[Notice], dict[str, Any]]

    def send(self, notice: Notice, *, event_id: str, to: Sequence[str]) -> None:
        body = formats.dumps(type(self).render(notice))
        self._post(body, {"Content-Type": "application/json"}, event_id=event_id)


class SlackChannel(_JsonChannel):
    kind = "slack"
    render = staticmethod(formats.slack_message)


class TeamsChannel(_JsonChannel):
    kind = "teams"
    render = staticmethod(formats.teams_message)


class EmailChannel:
    """One message per recipient (no one sees another's address), text and HTML alternatives."""

    addressed = True

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        security: str,
        sender: str,
        username: str | None = None,
        password: bytes | None = None,
        ca_file: Path | None = None,
        timeout: float = 10,
    ) -> None:
        self.name = name
        self._host, self._port, self._security = host, port, security
        self._sender = sender
        self._username, self._password = username, password
        self._context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._timeout = timeout
        self._sent: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def send(self, notice: Notice, *, event_id: str, to: Sequence[str]) -> None:
        pending = [a for a in dict.fromkeys(to) if (event_id, a) not in self._sent]
        if not pending:
            return
        try:
            with self._connect() as smtp:
                for address in pending:
                    self._send_one(smtp, self._message(notice, event_id=event_id, to=address), address)
                    self._remember(event_id, address)
        except (OSError, smtplib.SMTPException) as e:
            detail = f" {e.smtp_code}" if isinstance(e, smtplib.SMTPResponseException) else ""
            raise SinkUnavailable(
                f"notification channel {self.name}: SMTP to {self._host}:{self._port} failed: "
                f"{type(e).__name__}{detail}",
                hint="Is the mail server up, and are security, username and password right? "
                "The message is sent again with backoff.",
            ) from None

    def _send_one(self, smtp: smtplib.SMTP, message: EmailMessage, address: str) -> None:
        """A permanent refusal (5xx) of this address or message is logged and skipped: one bad
        address must not hold up every later notice. Temporary ones (4xx) are retried."""
        try:
            smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as e:
            code = next(iter(e.recipients.values()))[0] if e.recipients else 0
            if not 500 <= code < 600:
                raise
            log.error(
                "notification channel %s: the mail server refused %s (%d); not sent again",
                self.name,
                address,
                code,
            )
            smtp.rset()
        except smtplib.SMTPDataError as e:
            if not 500 <= e.smtp_code < 600:
                raise
            log.error(
                "notification channel %s: the mail server refused a message (%d); not sent again",
                self.name,
                e.smtp_code,
            )
            smtp.rset()

    def _connect(self) -> smtplib.SMTP:
        if self._security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self._host, self._port, timeout=self._timeout, context=self._context
            )
        else:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        try:
            if self._security == "starttls":
                smtp.starttls(context=self._context)
            if self._username is not None and self._password is not None:
                smtp.login(self._username, self._password.decode())
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _message(self, notice: Notice, *, event_id: str, to: str) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = formats.email_subject(notice)
        message["From"] = self._sender
        message["To"] = to
        message["Date"] = formatdate(localtime=False, usegmt=True)
        # The same notice to the same person always has the same id: a mail system can drop a repeat.
        digest = hashlib.sha256(f"{event_id}:{to}".encode()).hexdigest()[:24]
        message["Message-ID"] = f"<{event_id}.{digest}@kubejit>"
        message["X-Kubejit-Event-Id"] = event_id
        message.set_content(formats.email_text(notice))
        message.add_alternative(formats.email_html(notice), subtype="html")
        return message

    def _remember(self, event_id: str, address: str) -> None:
        with self._lock:
            self._sent[(event_id, address)] = None
            if len(self._sent) > REMEMBERED:
                self._sent.popitem(last=False)

    def close(self) -> None:
        return None
