"""HTTP delivery: a signed webhook (HMAC-SHA256) and Splunk's HTTP Event Collector.

A batch is one POST; any 2xx is the acknowledgement, anything else (or no answer) means the same
batch is sent again later. Errors name the URL and the status, never a header: both carry secrets.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from kubejit.audit.delivery.payload import PayloadFormat, event_payload
from kubejit.audit.delivery.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from kubejit.audit.event import StoredEvent
from kubejit.errors import SinkUnavailable

BATCH_HEADER = "X-Kubejit-Batch"
HEC_PATH = "/services/collector/event"


def webhook_body(events: Sequence[StoredEvent], fmt: PayloadFormat = "ocsf") -> bytes:
    """``{"events": [...]}`` in seq order, compact JSON."""
    return json.dumps({"events": [event_payload(e, fmt) for e in events]}, separators=(",", ":")).encode()


def hec_body(
    events: Sequence[StoredEvent],
    *,
    host: str,
    source: str,
    sourcetype: str,
    index: str | None,
    fmt: PayloadFormat = "ocsf",
) -> bytes:
    """HEC's batch format: one JSON object per event, concatenated (newline-separated here).

    ``fields`` are indexed fields in Splunk: de-duplicate with ``| dedup event_id``.
    """
    lines = []
    for event in events:
        entry: dict[str, Any] = {
            "time": round(event.at.timestamp(), 6),
            "host": host,
            "source": source,
            "sourcetype": sourcetype,
            "event": event_payload(event, fmt),
            "fields": {"event_id": event.event_id, "seq": event.seq, "action": event.action},
        }
        if index:
            entry["index"] = index
        lines.append(json.dumps(entry, separators=(",", ":")))
    return "\n".join(lines).encode()


def shown_url(url: str) -> str:
    """``url`` for messages: without user:password@ or a query, where a receiver's secret may sit."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class _HttpSink:
    def __init__(
        self, name: str, *, url: str, timeout: float, ca_file: Path | None, fmt: PayloadFormat
    ) -> None:
        self.name = name
        self.fmt: PayloadFormat = fmt
        self.url = url
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            verify = ssl.create_default_context(cafile=str(ca_file))
        self._client = httpx.Client(timeout=timeout, verify=verify, follow_redirects=False)

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as e:
            # A local protocol error quotes the offending header, which may be the secret one.
            reason = "" if isinstance(e, httpx.LocalProtocolError) else f": {e}"
            raise SinkUnavailable(
                f"audit sink {self.name}: POST {shown_url(url)} failed: {type(e).__name__}{reason}",
                hint="Is the receiver up? The batch is sent again with backoff.",
            ) from e
        if not response.is_success:
            raise SinkUnavailable(
                f"audit sink {self.name}: POST {shown_url(url)} answered {response.status_code}",
                hint="A 401/403 means the receiver rejected the signature or token: check the secret.",
            )
        return response

    def close(self) -> None:
        self._client.close()


class WebhookSink(_HttpSink):
    def __init__(
        self,
        name: str,
        *,
        url: str,
        key: bytes,
        timeout: float = 10,
        ca_file: Path | None = None,
        fmt: PayloadFormat = "ocsf",
        unix_time: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name, url=url, timeout=timeout, ca_file=ca_file, fmt=fmt)
        self._key = key
        self._unix_time = unix_time

    def deliver(self, events: Sequence[StoredEvent]) -> None:
        body = webhook_body(events, self.fmt)
        timestamp = int(self._unix_time())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._key, timestamp=timestamp, body=body),
            BATCH_HEADER: f"{events[0].seq}-{events[-1].seq}",
        }
        self._post(self.url, body, headers)


class SplunkHecSink(_HttpSink):
    def __init__(
        self,
        name: str,
        *,
        url: str,
        token: bytes,
        host: str,
        source: str = "kubejit",
        sourcetype: str = "kubejit:audit",
        index: str | None = None,
        timeout: float = 10,
        ca_file: Path | None = None,
        fmt: PayloadFormat = "ocsf",
    ) -> None:
        super().__init__(name, url=url, timeout=timeout, ca_file=ca_file, fmt=fmt)
        self._authorization = "Splunk " + token.decode()
        self._host, self._source, self._sourcetype, self._index = host, source, sourcetype, index

    def deliver(self, events: Sequence[StoredEvent]) -> None:
        body = hec_body(
            events,
            host=self._host,
            source=self._source,
            sourcetype=self._sourcetype,
            index=self._index,
            fmt=self.fmt,
        )
        headers = {"Authorization": self._authorization, "Content-Type": "application/json"}
        response = self._post(self.url + HEC_PATH, body, headers)
        code = _hec_code(response)
        if code not in (None, 0):
            raise SinkUnavailable(f"audit sink {self.name}: HEC answered code {code}")


def _hec_code(response: httpx.Response) -> int | None:
    """HEC's own status code in the body (0 = success); None when the body is not HEC's JSON."""
    try:
        answer = response.json()
    except ValueError:
        return None
    code = answer.get("code") if isinstance(answer, dict) else None
    return code if isinstance(code, int) else None
