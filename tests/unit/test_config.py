from __future__ import annotations

from pathlib import Path

import pytest

from kubejit.config import load_settings, parse_settings
from kubejit.errors import ConfigError

pytestmark = pytest.mark.unit

GOOD = """\
broker:
  host: 127.0.0.1
  port: 8080
clusters:
  - name: dev
    kubeconfig: kube/dev.yaml
    audience: https://dev.kubejit.local
policyFile: policy.yaml
devIssuer:
  enabled: true
  users:
    alice: [developers]
"""


def test_good_config_resolves_paths_relative_to_the_file(tmp_path: Path) -> None:
    settings = parse_settings(GOOD, source="c.yaml", base_dir=tmp_path)
    assert settings.clusters[0].kubeconfig == tmp_path / "kube/dev.yaml"
    assert settings.policy_file == tmp_path / "policy.yaml"
    assert settings.dev_issuer.users == {"alice": ["developers"]}
    assert settings.store_url.startswith("sqlite:///")


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        (GOOD.replace("port: 8080", "port: 99999"), "c.yaml:3:9", "broker.port"),
        (GOOD.replace("  port: 8080", "  prot: 8080"), "c.yaml:3:3", "broker.prot"),
        (GOOD.replace("    audience: https://dev.kubejit.local\n", ""), "c.yaml:5:5", "clusters.0.audience"),
        (GOOD.replace("name: dev", "name: Dev_1"), "c.yaml:5:11", "clusters.0.name"),
        (GOOD.replace("host: 127.0.0.1", "host: 0.0.0.0"), "c.yaml:1:1", "dev issuer"),
        (GOOD.replace("policyFile: policy.yaml\n", ""), "c.yaml:1:1", "policyFile"),
        (GOOD + "  bogus: 1\n", "c.yaml:13:3", "devIssuer.bogus"),
        ("clusters: [\n", "c.yaml:2:1", "invalid YAML"),
        ("- a\n- b\n", "c.yaml", "must be a mapping"),
    ],
)
def test_bad_config_names_file_line_and_field(text: str, where: str, what: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(text, source="c.yaml", base_dir=tmp_path)
    assert err.value.message.startswith(where), err.value.message
    assert what in err.value.message


def test_an_alias_in_the_config_file_is_refused_with_its_position(tmp_path: Path) -> None:
    """Aliases fan nodes out (a "billion laughs" config); the config refuses them as the policy does."""
    config = tmp_path / "kubejit.yaml"
    config.write_text(
        GOOD.replace("    alice: [developers]\n", "    alice: &devs [developers]\n    bob: *devs\n")
    )
    with pytest.raises(ConfigError) as err:
        load_settings(config)
    assert err.value.message.startswith(f"{config}:13:10: invalid YAML: aliases (*name) are not allowed")
    assert err.value.hint and "indentation" in err.value.hint


def test_cluster_needs_exactly_one_source(tmp_path: Path) -> None:
    text = GOOD.replace("    kubeconfig: kube/dev.yaml\n", "")
    with pytest.raises(ConfigError, match="exactly one of kubeconfig"):
        parse_settings(text, source="c.yaml", base_dir=tmp_path)


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_settings(binary)


def test_rate_limits_have_defaults_and_refuse_bad_values(tmp_path: Path) -> None:
    limits = parse_settings(GOOD, source="c.yaml", base_dir=tmp_path).broker.rate_limits
    assert (limits.per_source_per_minute, limits.per_principal_per_minute) == (1200, 600)
    assert (limits.auth_failures_per_source_per_minute, limits.auth_failure_summary_seconds) == (60, 60)
    assert parse_settings(GOOD, source="c.yaml", base_dir=tmp_path).broker.max_open_grants_per_person == 20
    text = GOOD.replace(
        "  port: 8080\n", "  port: 8080\n  rateLimits: {perSourcePerMinute: 0}\n  maxOpenGrantsPerPerson: 5\n"
    )
    settings = parse_settings(text, source="c.yaml", base_dir=tmp_path)
    assert settings.broker.rate_limits.per_source_per_minute == 0  # off
    assert settings.broker.max_open_grants_per_person == 5
    for bad, field in (
        ("rateLimits: {perPrincipalPerMinute: -1}", "broker.rateLimits.perPrincipalPerMinute"),
        ("rateLimits: {authFailureSummarySeconds: 7200}", "broker.rateLimits.authFailureSummarySeconds"),
        ("rateLimits: {perSecond: 5}", "broker.rateLimits.perSecond"),
        ("maxOpenGrantsPerPerson: 0", "broker.maxOpenGrantsPerPerson"),
    ):
        with pytest.raises(ConfigError, match=field):
            parse_settings(
                GOOD.replace("  port: 8080\n", f"  port: 8080\n  {bad}\n"), source="c.yaml", base_dir=tmp_path
            )


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ("  publicUrl: https://kubejit.example.com\n", "broker.publicUrl says people reach"),
        ("  publicUrl: http://10.0.0.5:8080\n", "broker.publicUrl says people reach"),
    ],
)
def test_the_dev_issuer_is_refused_behind_a_public_url(extra: str, words: str, tmp_path: Path) -> None:
    text = GOOD.replace("  port: 8080\n", "  port: 8080\n" + extra)
    with pytest.raises(ConfigError) as caught:
        parse_settings(text, source="c.yaml", base_dir=tmp_path)
    assert words in caught.value.message and "devIssuer.enabled: false" in caught.value.message


def test_the_dev_issuer_is_refused_next_to_real_issuers(tmp_path: Path) -> None:
    text = GOOD + (
        "identity:\n  issuers:\n    - {name: corp, issuerUrl: 'https://idp.example.com', audience: kubejit}\n"
    )
    with pytest.raises(ConfigError, match=r"with identity\.issuers configured"):
        parse_settings(text, source="c.yaml", base_dir=tmp_path)
    alone = text.replace("  enabled: true\n", "  enabled: false\n")
    assert parse_settings(alone, source="c.yaml", base_dir=tmp_path).identity.issuers


def test_the_dev_issuer_is_allowed_on_loopback_with_a_loopback_public_url(tmp_path: Path) -> None:
    for url in ("http://localhost:8080", "http://127.0.0.1:9000", "http://[::1]:8080"):
        text = GOOD.replace("  port: 8080\n", f"  port: 8080\n  publicUrl: '{url}'\n")
        assert parse_settings(text, source="c.yaml", base_dir=tmp_path).dev_issuer.enabled


@pytest.mark.parametrize(
    ("host", "settings", "exposed"),
    [
        ("127.0.0.1", "", (True, True)),
        ("::1", "", (True, True)),
        ("0.0.0.0", "", (False, False)),
        ("10.0.0.5", "", (False, False)),
        ("0.0.0.0", "  exposeMetrics: true\n", (True, False)),
        ("127.0.0.1", "  exposeApiDocs: false\n  exposeMetrics: false\n", (False, False)),
    ],
)
def test_metrics_and_api_docs_default_to_exposed_only_on_loopback(
    host: str, settings: str, exposed: tuple[bool, bool], tmp_path: Path
) -> None:
    text = GOOD.replace("host: 127.0.0.1", f"host: '{host}'").replace(
        "  port: 8080\n", "  port: 8080\n" + settings
    )
    text = text.replace("  enabled: true\n", "  enabled: false\n").replace(
        "  port: 8080\n", "  port: 8080\n  allowPlainHttp: true\n"
    )
    broker = parse_settings(text, source="c.yaml", base_dir=tmp_path).broker
    assert (broker.metrics_exposed, broker.api_docs_exposed) == exposed


def test_trusted_proxies_default_to_none_so_proxy_headers_are_ignored(tmp_path: Path) -> None:
    from kubejit.cli.commands.serve import proxy_options

    broker = parse_settings(GOOD, source="c.yaml", base_dir=tmp_path).broker
    assert broker.trusted_proxies == []
    assert proxy_options(broker) == {"proxy_headers": False, "forwarded_allow_ips": []}
    text = GOOD.replace(
        "  port: 8080\n", "  port: 8080\n  trustedProxies: [127.0.0.1, 10.0.0.0/8, 'fd00::/8']\n"
    )
    broker = parse_settings(text, source="c.yaml", base_dir=tmp_path).broker
    assert proxy_options(broker) == {
        "proxy_headers": True,
        "forwarded_allow_ips": ["127.0.0.1", "10.0.0.0/8", "fd00::/8"],
    }


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("10.0.0.0/33", "'10.0.0.0/33' is not an IP address or CIDR network"),
        ("proxy.internal", "'proxy.internal' is not an IP address or CIDR network"),
        ("10.1.2.3/8", "'10.1.2.3/8' has host bits set: write the network, 10.0.0.0/8"),
        ("'*'", "'*' would let any client claim any source address"),
    ],
)
def test_a_bad_trusted_proxy_names_file_line_and_entry(entry: str, words: str, tmp_path: Path) -> None:
    text = GOOD.replace(
        "  port: 8080\n", f"  port: 8080\n  trustedProxies:\n    - 127.0.0.1\n    - {entry}\n"
    )
    with pytest.raises(ConfigError) as err:
        parse_settings(text, source="c.yaml", base_dir=tmp_path)
    assert err.value.message.startswith("c.yaml:6:7: broker.trustedProxies.1: "), err.value.message
    assert words in err.value.message


def test_store_url_override_replaces_the_files_url_and_keeps_the_rest(tmp_path: Path) -> None:
    from kubejit.cli.commands.serve import override_settings

    settings = parse_settings(GOOD, source="c.yaml", base_dir=tmp_path)
    url = "postgresql+psycopg://kubejit:pw@db:5432/kubejit"
    changed = override_settings(settings, store_url=url)
    assert changed.store_url == url
    assert changed.broker == settings.broker
    assert override_settings(settings, store_url="") is settings  # an empty variable changes nothing


def test_host_override_is_checked_like_the_file(tmp_path: Path) -> None:
    from kubejit.cli.commands.serve import override_settings

    settings = parse_settings(GOOD, source="c.yaml", base_dir=tmp_path)
    assert settings.dev_issuer.enabled  # a dev issuer makes a public host unsafe
    with pytest.raises(ConfigError, match="--host/--port: the dev issuer"):
        override_settings(settings, host="0.0.0.0")


def test_tls_files_resolve_relative_to_the_config_and_make_the_url_https(tmp_path: Path) -> None:
    text = GOOD.replace("  port: 8080\n", "  port: 8080\n  tls: {certFile: tls/c.pem, keyFile: /k.pem}\n")
    broker = parse_settings(text, source="c.yaml", base_dir=tmp_path).broker
    assert broker.tls is not None
    assert (broker.tls.cert_file, broker.tls.key_file) == (tmp_path / "tls/c.pem", Path("/k.pem"))
    assert broker.url == "https://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("broker", "refused"),
    [
        ("  host: 0.0.0.0\n", True),
        ("  host: 10.1.2.3\n", True),
        ("  host: 0.0.0.0\n  allowPlainHttp: true\n", False),
        ("  host: 0.0.0.0\n  tls: {certFile: c.pem, keyFile: k.pem}\n", False),
        ("  host: '::1'\n", False),
        ("  host: localhost\n", False),
    ],
)
def test_plain_http_is_refused_off_loopback_unless_allowed(
    broker: str, refused: bool, tmp_path: Path
) -> None:
    text = GOOD.replace("  host: 127.0.0.1\n", broker).replace("  enabled: true\n", "  enabled: false\n")
    if not refused:
        assert parse_settings(text, source="c.yaml", base_dir=tmp_path)
        return
    with pytest.raises(ConfigError) as err:
        parse_settings(text, source="c.yaml", base_dir=tmp_path)
    assert "broker.allowPlainHttp: true" in err.value.message and "broker.tls" in err.value.message


def test_tls_flags_override_the_files_pair_and_go_together(tmp_path: Path) -> None:
    from kubejit.cli.commands.serve import override_tls

    settings = parse_settings(GOOD, source="c.yaml", base_dir=tmp_path)
    changed = override_tls(settings, cert_file=tmp_path / "c.pem", key_file=tmp_path / "k.pem")
    assert changed.broker.tls is not None and changed.broker.tls.key_file == tmp_path / "k.pem"
    assert override_tls(settings, cert_file=None, key_file=None) is settings
    with pytest.raises(ConfigError, match="go together"):
        override_tls(settings, cert_file=tmp_path / "c.pem", key_file=None)
