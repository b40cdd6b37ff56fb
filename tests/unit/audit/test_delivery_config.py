"""The audit.sinks config: typed, camelCase, file:line errors, secrets by reference only."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubejit.audit.delivery.payload import event_json
from kubejit.audit.delivery.sinks import build_sink
from kubejit.audit.delivery.sinks.file import JsonLinesFileSink
from kubejit.audit.delivery.sinks.http import shown_url
from kubejit.config import parse_settings
from kubejit.errors import ConfigError, SinkUnavailable
from kubejit.sink_settings import SyslogSinkSettings, WebhookSinkSettings, read_secret
from tests.unit.audit.test_delivery_format import event

pytestmark = pytest.mark.unit

BASE = """\
clusters:
  - name: dev
    kubeconfig: kube/dev.yaml
    audience: https://dev.kubejit.local
policyFile: policy.yaml
audit:
  failClosed: true
  sinks:
    - name: jsonl
      type: file
      path: audit/kubejit.jsonl
      maxBytes: 1048576
      keep: 3
    - name: syslog-tls
      type: syslog
      transport: tls
      host: siem.example.com
      port: 6514
      caFile: pki/ca.pem
      required: true
    - name: hook
      type: webhook
      url: https://hooks.example.com/kubejit
      hmacKey: {fromFile: secrets/hmac.key}
    - name: splunk
      type: splunkHec
      url: https://splunk.example.com:8088
      token: {fromEnv: KUBEJIT_HEC_TOKEN}
      index: security
"""


def test_sinks_parse_with_paths_relative_to_the_config(tmp_path: Path) -> None:
    audit = parse_settings(BASE, source="c.yaml", base_dir=tmp_path).audit
    jsonl, tls, hook, splunk = audit.sinks
    assert jsonl.type == "file" and jsonl.path == tmp_path / "audit/kubejit.jsonl" and jsonl.keep == 3
    assert isinstance(tls, SyslogSinkSettings) and tls.ca_file == tmp_path / "pki/ca.pem"
    assert isinstance(hook, WebhookSinkSettings) and hook.hmac_key.from_file == tmp_path / "secrets/hmac.key"
    assert splunk.type == "splunkHec" and audit.fail_closed and audit.required_sinks == ["syslog-tls"]


@pytest.mark.parametrize(
    ("change", "where", "what"),
    [
        (("transport: tls", "transport: quic"), "c.yaml:16:18", "audit.sinks.1.transport"),
        (("port: 6514", "port: 0"), "c.yaml:18:13", "audit.sinks.1.port"),
        (("keep: 3", "kep: 3"), "c.yaml:13:7", "audit.sinks.0.kep"),
        (("type: splunkHec", "type: splunk"), "c.yaml:25:7", "audit.sinks.3"),
        (
            ("https://hooks.example.com", "http://hooks.example.com"),
            "c.yaml:23:12",
            "only allowed to a loopback",
        ),
        (("{fromFile: secrets/hmac.key}", "s3cr3t-inline"), "c.yaml:24:16", "audit.sinks.2.hmacKey"),
        (("{fromEnv: KUBEJIT_HEC_TOKEN}", "{fromEnv: X, fromFile: y}"), "c.yaml:28:14", "exactly one"),
        (("name: hook", "name: jsonl"), "c.yaml:9:5", "duplicate sink names: jsonl"),
        (("      required: true\n", ""), "c.yaml:7:3", "failClosed needs at least one sink"),
        (
            ("      caFile: pki/ca.pem\n", "      caFile: pki/ca.pem\n      transport: udp\n"),
            "c.yaml",
            "transport",
        ),
    ],
)
def test_bad_sink_settings_name_file_line_and_setting(
    tmp_path: Path, change: tuple[str, str], where: str, what: str
) -> None:
    text = BASE.replace(*change)
    assert text != BASE
    with pytest.raises(ConfigError) as info:
        parse_settings(text, source="c.yaml", base_dir=tmp_path)
    assert info.value.message.startswith(where), info.value.message
    assert what in info.value.message
    assert "s3cr3t" not in info.value.message  # an inline secret is never echoed back


def test_a_udp_sink_cannot_be_required(tmp_path: Path) -> None:
    text = BASE.replace("transport: tls", "transport: udp").replace("      caFile: pki/ca.pem\n", "")
    with pytest.raises(ConfigError, match=r"c\.yaml:14:7: .*UDP sink cannot be required"):
        parse_settings(text, source="c.yaml", base_dir=tmp_path)
    parse_settings(
        text.replace("required: true", "required: false").replace("failClosed: true", ""),
        source="c.yaml",
        base_dir=tmp_path,
    )


def test_tls_options_are_refused_on_plain_transports(tmp_path: Path) -> None:
    text = BASE.replace("transport: tls", "transport: tcp")
    with pytest.raises(ConfigError, match="apply to transport: tls only"):
        parse_settings(text, source="c.yaml", base_dir=tmp_path)


def test_secrets_come_from_a_file_or_the_environment_and_errors_never_show_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets/hmac.key").write_text("file-secret\n")
    audit = parse_settings(BASE, source="c.yaml", base_dir=tmp_path).audit
    hook, splunk = audit.sinks[2], audit.sinks[3]
    assert isinstance(hook, WebhookSinkSettings)
    assert read_secret(hook.hmac_key, sink="hook") == b"file-secret"
    monkeypatch.delenv("KUBEJIT_HEC_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="KUBEJIT_HEC_TOKEN is empty or not set"):
        build_sink(splunk)
    monkeypatch.setenv("KUBEJIT_HEC_TOKEN", "env-secret")
    build_sink(splunk).close()
    (tmp_path / "secrets/hmac.key").unlink()
    with pytest.raises(ConfigError, match="cannot read the secret file") as info:
        build_sink(hook)
    assert "file-secret" not in str(info.value)


@pytest.mark.parametrize("token", ["hec-s3cr3t\nsecond-line", "hec-s3cr3t ", "hec-s3cr3t\u00e9"])
def test_a_hec_token_unfit_for_a_header_stops_the_broker_without_showing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    """Sent as is, httpx would fail at every batch with an error quoting the header, token and all."""
    splunk = parse_settings(BASE, source="c.yaml", base_dir=tmp_path).audit.sinks[3]
    monkeypatch.setenv("KUBEJIT_HEC_TOKEN", token)
    with pytest.raises(ConfigError, match="HEC token in environment variable KUBEJIT_HEC_TOKEN") as info:
        build_sink(splunk)
    assert "s3cr3t" not in str(info.value) + str(info.value.hint)


def test_a_url_with_credentials_is_never_echoed(tmp_path: Path) -> None:
    text = BASE.replace("https://hooks.example.com/kubejit", "ftp://user:pa55word@hooks.example.com/?t=tok3n")
    with pytest.raises(ConfigError, match="not an http\\(s\\) URL") as info:
        parse_settings(text, source="c.yaml", base_dir=tmp_path)
    assert "pa55word" not in info.value.message and "tok3n" not in info.value.message
    assert shown_url("https://user:pa55word@hooks.example.com:8443/in?t=tok3n") == (
        "https://hooks.example.com:8443/in"
    )


def test_a_missing_tls_ca_file_stops_the_broker_at_start(tmp_path: Path) -> None:
    tls = parse_settings(BASE, source="c.yaml", base_dir=tmp_path).audit.sinks[1]
    with pytest.raises(ConfigError, match="syslog-tls: cannot load its TLS files"):
        build_sink(tls)


def test_file_sink_rotates_by_size_keeping_n_files_and_never_splits_a_batch(tmp_path: Path) -> None:
    path = tmp_path / "out" / "audit.jsonl"
    line = len(event_json(event(1))) + 1
    sink = JsonLinesFileSink("jsonl", path=path, max_bytes=2 * line + 10, keep=2)
    for seq in range(1, 9):
        sink.deliver([event(seq)])
    files = sorted(path.parent.iterdir())
    assert [f.name for f in files] == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert (
        all(f.stat().st_size <= 2 * line + 10 for f in files) and oct(path.stat().st_mode & 0o777) == "0o600"
    )
    seqs = [
        int(line.split('"seq":')[1].split(",")[0])
        for f in reversed(files)
        for line in f.read_text().splitlines()
    ]
    assert seqs == [3, 4, 5, 6, 7, 8]  # two per file; the oldest file was dropped


def test_file_sink_failure_is_a_sink_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("")
    sink = JsonLinesFileSink("jsonl", path=tmp_path / "blocker" / "audit.jsonl", max_bytes=4096, keep=1)
    with pytest.raises(SinkUnavailable, match="jsonl: cannot write"):
        sink.deliver([event(1)])
