"""The notifications: config: channels, routes and requester email, checked at start with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubejit.config import parse_settings
from kubejit.errors import ConfigError
from kubejit.notify_settings import EmailChannelSettings, SlackChannelSettings, WebhookChannelSettings
from kubejit.server.notifications import build_channel

pytestmark = pytest.mark.unit

HEAD = """\
clusters:
  - name: dev
    kubeconfig: kube/dev.yaml
    audience: https://dev.kubejit.local
policyFile: policy.yaml
"""
GOOD = (
    HEAD
    + """\
notifications:
  expiringSoonMinutes: 10
  channels:
    - name: hook
      type: webhook
      url: https://hooks.example.com/kubejit
      hmacKey: {fromFile: secrets/hmac.key}
    - name: sre-slack
      type: slack
      url: {fromFile: secrets/slack-url}
    - name: sec-teams
      type: teams
      url: {fromEnv: TEAMS_URL}
    - name: mail
      type: email
      host: smtp.example.com
      username: kubejit
      password: {fromFile: secrets/smtp-password}
      from: kubejit@example.com
  routes:
    - channels: [sre-slack, mail]
      approverGroups: [sre]
      events: [needsApproval, breakGlass]
      to: [sre@example.com]
    - channels: [hook]
  requesterEmail: {channel: mail}
  emails: {alice: alice@example.com}
"""
)


def _parse(text: str, tmp_path: Path) -> object:
    return parse_settings(text, source="c.yaml", base_dir=tmp_path).notifications


def test_channels_and_routes_parse_with_secret_paths_relative_to_the_config(tmp_path: Path) -> None:
    settings = parse_settings(GOOD, source="c.yaml", base_dir=tmp_path).notifications
    hook, slack, _teams, mail = settings.channels
    assert (
        isinstance(hook, WebhookChannelSettings) and hook.hmac_key.from_file == tmp_path / "secrets/hmac.key"
    )
    assert isinstance(slack, SlackChannelSettings) and slack.url.from_file == tmp_path / "secrets/slack-url"
    assert isinstance(mail, EmailChannelSettings) and mail.smtp_port == 587 and mail.security == "starttls"
    assert settings.expiring_soon_minutes == 10 and settings.routes[1].events[0] == "needsApproval"
    assert settings.requester_email is not None and settings.requester_email.events == [
        "approved", "activated", "denied", "expiringSoon",
    ]  # fmt: skip


def test_default_expiring_soon_is_five_minutes(tmp_path: Path) -> None:
    settings = parse_settings(HEAD, source="c.yaml", base_dir=tmp_path).notifications
    assert settings.expiring_soon_minutes == 5 and settings.channels == []


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        (
            "  channels: [{name: x, type: pager, url: https://p.example.com}]\n",
            "does not match any of the expected tags",
        ),
        (
            "  channels: [{name: x, type: slack, url: https://hooks.slack.com/services/T/B/SECRET}]\n",
            "notifications.channels.0.url: Value error, this webhook URL is a credential",
        ),
        (
            "  channels: [{name: x, type: webhook, url: 'ftp://h.example.com', hmacKey: {fromEnv: K}}]\n",
            "not an http(s) URL",
        ),
        (
            "  channels: [{name: x, type: webhook, url: 'http://h.example.com', hmacKey: {fromEnv: K}}]\n",
            "plain http is only allowed",
        ),
        (
            "  channels: [{name: x, type: webhook, url: 'https://h.example.com', hmacKey: 'inline'}]\n",
            "valid dictionary",
        ),
        (
            "  channels: [{name: x, type: email, host: smtp.example.com, security: none, from: a@example.com}]\n",
            "loopback relay",
        ),
        (
            "  channels: [{name: x, type: email, host: h.example.com, username: u, from: a@example.com}]\n",
            "set both username and password",
        ),
        ("  channels: [{name: x, type: email, host: h.example.com, from: 'not an address'}]\n", "from"),
        (
            "  channels: [{name: x, type: webhook, url: 'https://h.example.com', hmacKey: {fromEnv: K}}]\n  routes: [{channels: [y]}]\n",
            "routes[0] names unknown channel(s) y (known: x)",
        ),
        (
            "  channels: [{name: x, type: email, host: h.example.com, from: a@example.com}]\n  routes: [{channels: [x]}]\n",
            "without addresses",
        ),
        (
            "  channels: [{name: x, type: webhook, url: 'https://h.example.com', hmacKey: {fromEnv: K}}]\n  requesterEmail: {channel: x}\n",
            "is not an email channel",
        ),
        ("  requesterEmail: {channel: m, events: [needsApproval]}\n", "goes to approvers"),
        (
            "  channels: [{name: x, type: webhook, url: 'https://h.example.com', hmacKey: {fromEnv: K}}, {name: x, type: webhook, url: 'https://h.example.com', hmacKey: {fromEnv: K}}]\n",
            "duplicate channel names: x",
        ),
        ("  expiringSoonMinutes: 0\n", "greater than 0"),
        ("  routes: [{channels: [x], events: [sometimes]}]\n", "Input should be"),
    ],
)
def test_bad_config_is_refused_with_a_clear_error(tmp_path: Path, snippet: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _parse(HEAD + "notifications:\n" + snippet, tmp_path)
    assert message in caught.value.message
    assert "SECRET" not in caught.value.message


def test_a_missing_secret_file_stops_the_start_naming_the_channel(tmp_path: Path) -> None:
    settings = parse_settings(
        HEAD + "notifications:\n  channels: [{name: sre, type: slack, url: {fromFile: nope}}]\n",
        source="c.yaml",
        base_dir=tmp_path,
    ).notifications
    with pytest.raises(ConfigError) as caught:
        build_channel(settings.channels[0])
    assert (
        f"notification channel sre: cannot read the secret file {tmp_path / 'nope'}" in caught.value.message
    )


def test_a_bad_webhook_url_in_its_secret_file_is_refused_without_quoting_it(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("hooks.slack.com/services/T000/B000/SECRETPART\n")
    settings = parse_settings(
        HEAD + "notifications:\n  channels: [{name: sre, type: teams, url: {fromFile: url}}]\n",
        source="c.yaml",
        base_dir=tmp_path,
    ).notifications
    with pytest.raises(ConfigError) as caught:
        build_channel(settings.channels[0])
    assert "notification channel sre: the URL in file" in caught.value.message
    assert "not an http(s) URL" in caught.value.message and "SECRETPART" not in caught.value.message


def test_an_empty_password_variable_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMTP_PW", raising=False)
    settings = parse_settings(
        HEAD + "notifications:\n  channels: [{name: m, type: email, host: h.example.com, username: u, "
        "password: {fromEnv: SMTP_PW}, from: a@example.com}]\n",
        source="c.yaml",
        base_dir=tmp_path,
    ).notifications
    with pytest.raises(ConfigError, match="notification channel m: environment variable SMTP_PW is empty"):
        build_channel(settings.channels[0])
