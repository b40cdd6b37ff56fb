"""Sinks, one module per transport; ``build_sink`` turns a sink's settings into a ready sink."""

from __future__ import annotations

import re
import socket
import ssl

from kubejit.audit.delivery.ports import Sink
from kubejit.audit.delivery.sinks.file import JsonLinesFileSink
from kubejit.audit.delivery.sinks.http import SplunkHecSink, WebhookSink
from kubejit.audit.delivery.sinks.syslog import SyslogSink
from kubejit.errors import ConfigError
from kubejit.sink_settings import (
    FileSinkSettings,
    SinkSettings,
    SplunkHecSinkSettings,
    SyslogSinkSettings,
    WebhookSinkSettings,
    read_secret,
)


def build_sink(settings: SinkSettings) -> Sink:
    """A sink ready to deliver; secrets are read here (at start), and bad files are config errors."""
    try:
        return _build(settings)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(
            f"audit sink {settings.name}: cannot load its TLS files: {getattr(e, 'strerror', None) or e}",
            hint="Check caFile, certFile and keyFile: PEM files the broker's user can read.",
        ) from e


def _build(settings: SinkSettings) -> Sink:
    if isinstance(settings, FileSinkSettings):
        return JsonLinesFileSink(
            settings.name,
            path=settings.path,
            max_bytes=settings.max_bytes,
            keep=settings.keep,
            fmt=settings.format,
        )
    if isinstance(settings, SyslogSinkSettings):
        return SyslogSink(settings)
    if isinstance(settings, WebhookSinkSettings):
        return WebhookSink(
            settings.name,
            url=settings.url,
            key=read_secret(settings.hmac_key, sink=settings.name),
            timeout=settings.timeout_seconds,
            ca_file=settings.ca_file,
            fmt=settings.format,
        )
    if isinstance(settings, SplunkHecSinkSettings):
        return SplunkHecSink(
            settings.name,
            url=settings.url,
            token=_hec_token(settings),
            host=socket.gethostname(),
            source=settings.source,
            sourcetype=settings.sourcetype,
            index=settings.index,
            timeout=settings.timeout_seconds,
            ca_file=settings.ca_file,
            fmt=settings.format,
        )
    raise TypeError(f"unknown sink settings {type(settings).__name__}")


def _hec_token(settings: SplunkHecSinkSettings) -> bytes:
    """The token goes into a header: a space, newline or control character in it would make the
    HTTP client fail later with an error quoting the header, token included; refuse it here."""
    token = read_secret(settings.token, sink=settings.name)
    if not re.fullmatch(rb"[\x21-\x7e]+", token):
        raise ConfigError(
            f"audit sink {settings.name}: the HEC token in {settings.token.describe()} has spaces, "
            "line breaks or non-ASCII characters",
            hint="Store the token alone (one line, as Splunk shows it).",
        )
    return token
