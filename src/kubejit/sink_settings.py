"""The ``audit:`` section of the broker config: sinks, retries and the fail-closed switch.

Pydantic lives here only because this is the config boundary; ``config.AuditSettings`` extends
``AuditDeliverySettings``. Secrets (the webhook's HMAC key, the HEC token) are never written inline: a
sink names a file or an environment variable, read when the broker starts (``read_secret``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from kubejit.checks import duplicates, is_loopback
from kubejit.errors import ConfigError

SinkName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
#: Syslog facility names (RFC 5424 section 6.2.1) and their codes.
FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14,
    "solaris-cron": 15, "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20,
    "local5": 21, "local6": 22, "local7": 23,
}  # fmt: skip
Facility = Literal[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "security", "console", "solaris-cron", "local0", "local1", "local2", "local3",
    "local4", "local5", "local6", "local7",
]  # fmt: skip


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class SecretSource(_Model):
    """Where a secret is read from at start: exactly one of a file (its content, trailing newline
    removed) or an environment variable."""

    from_file: Path | None = None
    from_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.from_file is None) == (self.from_env is None):
            raise ValueError("set exactly one of fromFile or fromEnv (secrets are never written inline)")
        return self

    def describe(self) -> str:
        return f"file {self.from_file}" if self.from_file else f"environment variable {self.from_env}"


class _Sink(_Model):
    name: SinkName
    #: A required sink must have acknowledged every earlier event before a grant is activated,
    #: when ``audit.failClosed`` is on.
    required: bool = False
    #: ``ocsf``: the OCSF-shaped event (the kubejit event inside); ``kubejit``: the stored event alone.
    format: Literal["ocsf", "kubejit"] = "ocsf"
    batch_size: int = Field(default=200, ge=1, le=5000)
    timeout_seconds: float = Field(default=10, gt=0, le=300)


class FileSinkSettings(_Sink):
    """JSON lines appended to ``path``, fsynced per batch, rotated by size keeping ``keep`` old files."""

    type: Literal["file"]
    path: Path
    max_bytes: int = Field(default=100 * 1024 * 1024, ge=4096)
    keep: int = Field(default=5, ge=0, le=1000)


class SyslogSinkSettings(_Sink):
    """RFC 5424 messages over UDP (RFC 5426, best effort), TCP (RFC 6587) or TLS (RFC 5425)."""

    type: Literal["syslog"]
    transport: Literal["udp", "tcp", "tls"]
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    facility: Facility = "authpriv"
    app_name: str = Field(default="kubejit", pattern=r"^[!-~]{1,48}$")
    #: TLS: the CA that signed the receiver's certificate (default: the system's trust store).
    ca_file: Path | None = None
    #: TLS: the name the receiver's certificate must carry (default: ``host``).
    server_name: str | None = None
    #: TLS client authentication, when the receiver asks for it (both or neither).
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _tls_only_options(self) -> SyslogSinkSettings:
        tls_options = [self.ca_file, self.server_name, self.cert_file, self.key_file]
        if self.transport != "tls" and any(o is not None for o in tls_options):
            raise ValueError("caFile, serverName, certFile and keyFile apply to transport: tls only")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("set both certFile and keyFile for TLS client authentication, or neither")
        if self.required and self.transport == "udp":
            raise ValueError("a UDP sink cannot be required: UDP never acknowledges (use tcp or tls)")
        return self


class _HttpSink(_Sink):
    url: str
    ca_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _https_unless_loopback(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # Not the URL itself: it may carry a password or a token in its query.
            raise ValueError(f"not an http(s) URL (scheme {parts.scheme!r}, host {parts.hostname!r})")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ValueError("plain http is only allowed to a loopback address; use https")
        return url.rstrip("/")


class WebhookSinkSettings(_HttpSink):
    """POST a JSON batch, signed with HMAC-SHA256 over timestamp and body (see docs/audit-delivery.md)."""

    type: Literal["webhook"]
    hmac_key: SecretSource


class SplunkHecSinkSettings(_HttpSink):
    """Splunk HTTP Event Collector: ``url`` is the collector's base URL (https://splunk:8088)."""

    type: Literal["splunkHec"]
    token: SecretSource
    index: str | None = None
    source: str = "kubejit"
    sourcetype: str = "kubejit:audit"


SinkSettings = Annotated[
    FileSinkSettings | SyslogSinkSettings | WebhookSinkSettings | SplunkHecSinkSettings,
    Field(discriminator="type"),
]
#: The discriminator values pydantic puts into error locations; they are not keys in the YAML.
SINK_TYPES = frozenset({"file", "syslog", "webhook", "splunkHec"})


class RetrySettings(_Model):
    """Exponential backoff with jitter between failed deliveries to one sink."""

    initial_seconds: float = Field(default=1, gt=0, le=3600)
    max_seconds: float = Field(default=300, gt=0, le=86400)

    @model_validator(mode="after")
    def _ordered(self) -> RetrySettings:
        if self.max_seconds < self.initial_seconds:
            raise ValueError("maxSeconds must be at least initialSeconds")
        return self


class AuditDeliverySettings(_Model):
    sinks: list[SinkSettings] = Field(default_factory=list)
    #: How often each sink's worker looks for new events when it is caught up.
    delivery_interval_seconds: float = Field(default=1, gt=0, le=60)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    #: Refuse to activate a grant until every ``required`` sink has acknowledged all earlier events.
    fail_closed: bool = False
    #: How long an activation waits for the required sinks before it is refused (fail-closed only).
    required_wait_seconds: float = Field(default=5, ge=0, le=120)

    @field_validator("sinks")
    @classmethod
    def _unique_names(cls, sinks: list[Any]) -> list[Any]:
        names = [s.name for s in sinks]
        dupes = duplicates(names)
        if dupes:
            raise ValueError(f"duplicate sink names: {', '.join(dupes)}")
        return sinks

    @model_validator(mode="after")
    def _fail_closed_needs_a_required_sink(self) -> AuditDeliverySettings:
        if self.fail_closed and not any(s.required for s in self.sinks):
            raise ValueError(
                "failClosed needs at least one sink with required: true (the store itself always "
                "records the event in the grant's own transaction)"
            )
        return self

    @property
    def required_sinks(self) -> list[str]:
        return [s.name for s in self.sinks if s.required]


def resolve_paths(audit: Any, resolve: Any) -> None:
    """Make relative file paths in the raw ``audit`` mapping relative to the config file (in place)."""
    if not isinstance(audit, dict) or not isinstance(audit.get("sinks"), list):
        return
    for sink in audit["sinks"]:
        if not isinstance(sink, dict):
            continue
        for key in ("path", "caFile", "certFile", "keyFile"):
            if key in sink:
                sink[key] = resolve(sink[key])
        for key in ("hmacKey", "token"):
            secret = sink.get(key)
            if isinstance(secret, dict) and "fromFile" in secret:
                secret["fromFile"] = resolve(secret["fromFile"])


def read_secret(source: SecretSource, *, sink: str, what: str = "audit sink") -> bytes:
    """The secret's bytes (trailing newline stripped); errors name where it was looked for, never it."""
    if source.from_env is not None:
        value = os.environ.get(source.from_env, "")
        if not value:
            raise ConfigError(
                f"{what} {sink}: environment variable {source.from_env} is empty or not set",
                hint=f"Export {source.from_env} for the broker, or use fromFile.",
            )
        return value.encode()
    assert source.from_file is not None
    try:
        data = source.from_file.read_bytes().rstrip(b"\r\n")
    except OSError as e:
        raise ConfigError(
            f"{what} {sink}: cannot read the secret file {source.from_file}: {e.strerror or e}",
            hint="Check the path and that the broker's user can read it (mode 0600 is enough).",
        ) from e
    if not data:
        raise ConfigError(f"{what} {sink}: the secret file {source.from_file} is empty")
    return data
