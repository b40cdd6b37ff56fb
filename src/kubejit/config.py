"""One typed settings object for the broker, read from a YAML file and validated at start.

Invalid settings stop the broker with file:line:column and what to change. Unsafe combinations
(the dev issuer on a non-loopback address) are refused rather than warned about.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from kubejit.checks import check_url, duplicates, is_loopback
from kubejit.errors import ConfigError
from kubejit.sink_settings import SINK_TYPES, AuditDeliverySettings, resolve_paths
from kubejit.yamlsource import parse_yaml, read_text, where

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DnsLabel = Annotated[str, Field(pattern=_DNS_LABEL.pattern)]
_GROUPS_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,62}:")


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "kubejit"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


#: How a grant's access reaches the cluster: a ServiceAccount with TokenRequest tokens, or kubejit's
#: own JWTs naming the person (the cluster trusts the broker as an issuer; docs/jwt-mode.md).
CredentialMode = Literal["serviceAccount", "jwt"]


class ClusterSettings(_Model):
    name: DnsLabel
    kubeconfig: Path | None = None
    context: str | None = None
    in_cluster: bool = False
    #: The audience kubejit's tokens are bound to; the cluster's API server must accept it.
    audience: str = Field(min_length=1)
    credential_mode: CredentialMode = "serviceAccount"

    @model_validator(mode="after")
    def _one_source(self) -> ClusterSettings:
        if self.in_cluster == (self.kubeconfig is not None):
            raise ValueError("set exactly one of kubeconfig (with an optional context) or inCluster: true")
        return self


class RateLimitSettings(_Model):
    """Per-replica request limits (docs/configuration.md); 0 turns a limit off. Loopback is not exempt."""

    per_source_per_minute: int = Field(default=1200, ge=0, le=1_000_000)
    per_principal_per_minute: int = Field(default=600, ge=0, le=1_000_000)
    auth_failures_per_source_per_minute: int = Field(default=60, ge=0, le=1_000_000)
    #: Repeated auth.failed from one source within this interval become one event with a count.
    auth_failure_summary_seconds: float = Field(default=60, ge=0, le=3600)


def _proxy_network(entry: str) -> str:
    """A proxy's address or network (CIDR), checked here: uvicorn would quietly take a typo as a name."""
    value = entry.strip()
    if value == "*":
        raise ValueError(
            "'*' would let any client claim any source address: list your proxies' addresses or networks"
        )
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            network = ipaddress.ip_network(value, strict=False)
            raise ValueError(f"{value!r} has host bits set: write the network, {network}") from None
        raise ValueError(f"{value!r} is not an IP address or CIDR network (e.g. 10.0.0.0/8)") from None
    return value


#: An address or CIDR network from which ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed.
TrustedProxy = Annotated[str, AfterValidator(_proxy_network)]


class TlsSettings(_Model):
    """The broker's own serving certificate (PEM files), re-read when either file changes."""

    #: The certificate chain, leaf first.
    cert_file: Path
    #: Its private key (unencrypted PEM).
    key_file: Path


class BrokerSettings(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    #: How the CLI reaches the broker; defaults to http://host:port.
    public_url: str | None = None
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    #: Pending + approved + active grants one person may hold at once.
    max_open_grants_per_person: int = Field(default=20, ge=1, le=10_000)
    #: Serve /metrics (unauthenticated). Default: only when the broker listens on loopback.
    expose_metrics: bool | None = None
    #: Serve /openapi.json, /docs and /redoc (unauthenticated). Default: only on loopback.
    expose_api_docs: bool | None = None
    #: Reverse proxies whose X-Forwarded-For names the client (source IP for rate limits and audit).
    #: Empty (default): proxy headers are ignored, the source is the connection's peer.
    trusted_proxies: list[TrustedProxy] = Field(default_factory=list)
    #: On SIGTERM, how long requests in flight may take to finish before they are cut (then the
    #: workers stop and hand their leases back). Below Kubernetes' terminationGracePeriodSeconds.
    shutdown_grace_seconds: int = Field(default=20, ge=0, le=600)
    #: Serve HTTPS with this certificate and key (docs/deploy.md); null: plain HTTP.
    tls: TlsSettings | None = None
    #: Plain HTTP on a non-loopback address (TLS ends at a proxy in front). Loopback is always allowed.
    allow_plain_http: bool = False

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return self.public_url or f"{scheme}://{self.host}:{self.port}"

    @property
    def metrics_exposed(self) -> bool:
        return is_loopback(self.host) if self.expose_metrics is None else self.expose_metrics

    @property
    def api_docs_exposed(self) -> bool:
        return is_loopback(self.host) if self.expose_api_docs is None else self.expose_api_docs


class StoreSettings(_Model):
    url: str = ""


class WorkloadIssuerSettings(_Model):
    """A CI/CD system whose job tokens the broker exchanges for grants (docs/ci.md)."""

    #: Named by the policy's workload rules, and the prefix of its principals (``github:repo:...``).
    name: DnsLabel
    #: Which claims the policy's rules may match: github, gitlab, or oidc (any other issuer).
    kind: Literal["github", "gitlab", "oidc"]
    #: Exactly the tokens' ``iss``, e.g. https://token.actions.githubusercontent.com.
    issuer_url: str = Field(min_length=1)
    #: The one ``aud`` job tokens must carry (exactly: a token for several audiences is refused).
    audience: str = Field(min_length=1)
    leeway_seconds: int = Field(default=30, ge=0, le=120)
    jwks_min_refresh_seconds: float = Field(default=30, ge=0, le=3600)

    @field_validator("issuer_url")
    @classmethod
    def _https(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.hostname:
            return url
        if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
            return url
        raise ValueError("must be an https:// URL (http:// only on a loopback address)")


class DevIssuerSettings(_Model):
    enabled: bool = False
    #: user name -> groups
    users: dict[DnsLabel, list[str]] = Field(default_factory=dict)
    token_ttl_seconds: int = Field(default=12 * 3600, ge=60, le=7 * 86400)


class OidcLoginSettings(_Model):
    """What `kubejit login` needs: the CLI's public client at the IdP and the scopes it asks for."""

    client_id: str = Field(min_length=1)
    #: The loopback redirect's host (RFC 8252 prefers the IP literal; Dex only accepts "localhost").
    redirect_host: Literal["127.0.0.1", "localhost"] = "127.0.0.1"
    #: e.g. Dex's cross-client scope ``audience:server:client_id:<broker audience>``.
    scopes: list[str] = Field(
        default_factory=lambda: ["openid", "profile", "email", "groups", "offline_access"]
    )


class OidcIssuerSettings(_Model):
    """One trusted OIDC issuer (an IdP for people); see docs/identity.md."""

    name: DnsLabel
    #: Exactly the tokens' ``iss``; https, or http on loopback.
    issuer_url: str = Field(min_length=1)
    #: The ``aud`` tokens must carry for this broker.
    audience: str = Field(min_length=1)
    username_claim: str = Field(default="sub", min_length=1)
    #: null: the issuer's groups are ignored.
    groups_claim: str | None = "groups"
    #: Put before usernames (and groups, unless groupsPrefix): defaults to "<name>:".
    prefix: str | None = None
    #: Put before groups: null (default) means the same as the prefix, "" means none (the IdP's
    #: group names as they are: only for a single issuer that maps groups).
    groups_prefix: str | None = None
    required_claims: list[str] = Field(default_factory=list)
    leeway_seconds: int = Field(default=30, ge=0, le=300)
    #: How often at most an unknown key id makes the broker refetch the issuer's JWKS.
    jwks_min_refresh_seconds: float = Field(default=30, ge=0, le=3600)
    #: A CA bundle for an IdP with a private CA (https only).
    ca_file: Path | None = None
    login: OidcLoginSettings | None = None

    @field_validator("issuer_url")
    @classmethod
    def _safe_url(cls, url: str) -> str:
        try:
            return check_url(url, what="issuerUrl")
        except ConfigError as exc:
            raise ValueError(exc.message) from exc

    @field_validator("name")
    @classmethod
    def _not_the_dev_issuer(cls, name: str) -> str:
        if name == "dev":
            raise ValueError("'dev' is the embedded dev issuer's name; give this issuer another")
        return name

    @field_validator("prefix")
    @classmethod
    def _prefix_ends_with_colon(cls, prefix: str | None) -> str | None:
        if prefix is not None and (not prefix.endswith(":") or len(prefix) < 2):
            raise ValueError("a prefix must end with ':' (e.g. 'corp:') so it never blends into a name")
        return prefix

    @field_validator("groups_prefix")
    @classmethod
    def _safe_groups_prefix(cls, prefix: str | None) -> str | None:
        if prefix in (None, "") or _GROUPS_PREFIX.fullmatch(prefix):
            return prefix
        raise ValueError(
            "a groupsPrefix is letters, digits, '.', '_', '-' or ':' ending with ':' (e.g. 'corp:'), "
            "or '' for none"
        )

    @property
    def effective_prefix(self) -> str:
        return self.prefix or f"{self.name}:"

    @property
    def effective_groups_prefix(self) -> str | None:
        """What this issuer's groups start with; None when it maps no groups (groupsClaim: null)."""
        if self.groups_claim is None:
            return None
        return self.effective_prefix if self.groups_prefix is None else self.groups_prefix


class IdentitySettings(_Model):
    issuers: list[OidcIssuerSettings] = Field(default_factory=list)

    @field_validator("issuers")
    @classmethod
    def _distinct(cls, issuers: list[OidcIssuerSettings]) -> list[OidcIssuerSettings]:
        for attr, what in (
            ("name", "names"),
            ("issuer_url", "URLs"),
            ("effective_prefix", "prefixes"),
        ):
            values = [getattr(i, attr) for i in issuers]
            dupes = duplicates(values)
            if dupes:
                raise ValueError(f"duplicate issuer {what}: {', '.join(dupes)}")
        prefixes = [i.effective_prefix for i in issuers]
        for a in prefixes:
            for b in prefixes:
                if a != b and b.startswith(a):
                    raise ValueError(f"issuer prefix {a!r} is a prefix of {b!r}: their names could collide")
        _refuse_overlapping_groups(issuers)
        return issuers


def _refuse_overlapping_groups(issuers: list[OidcIssuerSettings]) -> None:
    """Two issuers whose groups could be spelled alike would let one IdP mint the other's groups
    (its admin group, say): group prefixes must be distinct and none the start of another ("" is
    the start of every prefix)."""
    mapped = [(i.name, i.effective_groups_prefix) for i in issuers if i.effective_groups_prefix is not None]
    for a_name, a in mapped:
        for b_name, b in mapped:
            if a_name != b_name and b.startswith(a):
                raise ValueError(
                    f"the groups of issuers {a_name!r} ({a!r}) and {b_name!r} ({b!r}) could collide: "
                    "give each a groupsPrefix that is not the start of another's, or groupsClaim: null"
                )


class WebSettings(_Model):
    """The web pages under /ui/ (docs/web.md): who people sign in with, and how long a session lasts."""

    enabled: bool = True
    #: The identity issuer (its ``name``) people sign in with; null: the dev issuer when it is enabled,
    #: else the first issuer with a ``login`` client (none: the pages are not served).
    issuer: str | None = None
    #: The broker's client at that issuer; null: the issuer's ``login.clientId``. Register the redirect
    #: URI <publicUrl>/ui/auth/callback for it.
    client_id: str | None = None
    #: A confidential client's secret, read from this file (mode 0600) at start; null: a public client.
    client_secret_file: Path | None = None
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email", "groups"])
    #: A session unused this long ends.
    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    #: A session ends this long after sign-in, however active.
    session_max_hours: float = Field(default=12, gt=0, le=7 * 24)


class AuditSettings(AuditDeliverySettings):
    """The audit log's tamper evidence (docs/audit.md); delivery to sinks (docs/audit-delivery.md)."""

    #: Ed25519 private key (PEM) that signs checkpoints; created on first start when missing.
    #: Default: <dataDir>/audit-checkpoint-key.pem. Keep a copy of its public half off the broker.
    checkpoint_key_file: Path | None = None
    #: How often the head of the chain is signed (only when new events were appended).
    checkpoint_interval_seconds: float = Field(default=60, ge=1, le=86400)


class LoggingSettings(_Model):
    """How the broker writes its log (stderr): ``text`` for people, ``json`` for a log collector."""

    format: Literal["text", "json"] = "text"


class JwtIssuerSettings(_Model):
    """kubejit as the issuer of cluster credentials for clusters in jwt mode (docs/jwt-mode.md)."""

    #: Where the ES256 signing keys live (one 0600 PEM file each). Default: <dataDir>/jwt-issuer-keys.
    key_dir: Path | None = None
    #: How long one cluster token lives; the exec plugin refreshes it before it expires.
    token_lifetime_minutes: int = Field(default=5, ge=1, le=60)
    #: Put before the person's principal in the cluster's username (claimMappings.username.prefix).
    username_prefix: str = Field(default="kubejit:", pattern=_GROUPS_PREFIX.pattern)
    #: A new signing key after this long; the old one stays published until its last token expired.
    rotate_after_hours: float = Field(default=720, gt=0, le=24 * 365)
    #: The CA (PEM) that signed the broker's HTTPS certificate, which clusters must trust to fetch
    #: the keys; `kubejit cluster-setup --mode jwt` prints it as certificateAuthority. Null: a public CA.
    certificate_authority_file: Path | None = None


class WorkerSettings(_Model):
    sweep_interval_seconds: float = Field(default=0.5, gt=0, le=60)
    reconcile_interval_seconds: float = Field(default=60, ge=1, le=86400)
    #: How often the policy file is re-read (by content hash) to apply a new version; 0: never.
    policy_reload_interval_seconds: float = Field(default=5, ge=0, le=3600)


class Settings(_Model):
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    #: Where kubejit keeps per-grant ServiceAccounts, in every cluster.
    grant_namespace: DnsLabel = "kubejit-grants"
    #: Where the broker's own ServiceAccount (and, in-cluster, its pod) lives: no policy reaches it.
    broker_namespace: DnsLabel = "kubejit"
    clusters: list[ClusterSettings] = Field(min_length=1)
    policy_file: Path
    #: CI/CD systems whose job tokens ``POST /v1/token-exchange`` accepts.
    workload_issuers: list[WorkloadIssuerSettings] = Field(default_factory=list)
    dev_issuer: DevIssuerSettings = Field(default_factory=DevIssuerSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    jwt_issuer: JwtIssuerSettings = Field(default_factory=JwtIssuerSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    data_dir: Path = Field(default_factory=data_dir)

    @field_validator("clusters")
    @classmethod
    def _unique_names(cls, clusters: list[ClusterSettings]) -> list[ClusterSettings]:
        names = [c.name for c in clusters]
        dupes = duplicates(names)
        if dupes:
            raise ValueError(f"duplicate cluster names: {', '.join(dupes)}")
        return clusters

    @field_validator("workload_issuers")
    @classmethod
    def _distinct_workloads(cls, issuers: list[WorkloadIssuerSettings]) -> list[WorkloadIssuerSettings]:
        for attr in ("name", "issuer_url"):
            values = [getattr(i, attr) for i in issuers]
            dupes = duplicates(values)
            if dupes:
                raise ValueError(f"duplicate workload issuer {attr}: {', '.join(dupes)}")
        return issuers

    @model_validator(mode="after")
    def _jwt_issuer_reachable(self) -> Settings:
        """API servers fetch kubejit's keys over HTTPS only: jwt mode needs an https broker URL."""
        jwt = [c.name for c in self.clusters if c.credential_mode == "jwt"]
        if jwt and urlsplit(self.broker.url).scheme != "https":
            raise ValueError(
                f"cluster {jwt[0]!r} is in credentialMode jwt, so its API server must fetch kubejit's "
                "keys over HTTPS: set broker.tls (certFile, keyFile), or an https broker.publicUrl "
                "behind a TLS proxy"
            )
        return self

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        if not self.dev_issuer.enabled:
            return self
        if not is_loopback(self.broker.host):
            raise ValueError(
                "the dev issuer signs tokens for anyone who asks: it is only allowed when the broker "
                "listens on a loopback address (broker.host: 127.0.0.1)"
            )
        public = urlsplit(self.broker.public_url).hostname if self.broker.public_url else self.broker.host
        if not is_loopback(public):
            raise ValueError(
                "the dev issuer signs tokens for anyone who asks, and broker.publicUrl says people reach "
                "this broker from elsewhere (through a proxy): set devIssuer.enabled: false, or a loopback publicUrl"
            )
        if self.identity.issuers:
            raise ValueError(
                "the dev issuer is for trials without an IdP: with identity.issuers configured it would let "
                "anyone on the broker's host log in as any dev user; set devIssuer.enabled: false"
            )
        return self

    @model_validator(mode="after")
    def _plain_http_only_on_loopback(self) -> Settings:
        """Bearer tokens in clear text must not cross a network by accident: say so explicitly."""
        broker = self.broker
        if broker.tls is None and not broker.allow_plain_http and not is_loopback(broker.host):
            raise ValueError(
                f"the broker would serve plain HTTP on {broker.host}, so login tokens could cross the network "
                "in clear text: set broker.tls (certFile, keyFile), or broker.allowPlainHttp: true when TLS "
                "ends at a proxy in front of the broker"
            )
        return self

    @model_validator(mode="after")
    def _web_issuer_known(self) -> Settings:
        wanted = self.web.issuer
        names = [i.name for i in self.identity.issuers]
        if not self.web.enabled or wanted is None or wanted in names:
            return self
        if wanted == "dev" and self.dev_issuer.enabled:
            return self
        known = ", ".join(names + (["dev"] if self.dev_issuer.enabled else [])) or "none"
        raise ValueError(f"web.issuer: no identity issuer is named {wanted!r} (known: {known})")

    @property
    def kubejit_namespaces(self) -> frozenset[str]:
        """The broker's and the grant namespace: protected from every policy rule (docs/policy.md)."""
        return frozenset({self.broker_namespace, self.grant_namespace})

    @property
    def checkpoint_key_path(self) -> Path:
        return self.audit.checkpoint_key_file or self.data_dir / "audit-checkpoint-key.pem"

    @property
    def jwt_key_dir(self) -> Path:
        return self.jwt_issuer.key_dir or self.data_dir / "jwt-issuer-keys"

    @property
    def jwt_issuer_url(self) -> str:
        """The ``iss`` of kubejit's cluster tokens: one issuer for every cluster, each its own audience."""
        return self.broker.url.rstrip("/") + "/k8s"

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{self.data_dir / 'kubejit.db'}"


def _resolve(base: Path, value: Any) -> Any:
    if isinstance(value, str) and value and not os.path.isabs(os.path.expanduser(value)):
        return str(base / value)
    return os.path.expanduser(value) if isinstance(value, str) else value


def _resolve_keys(base: Path, section: Any, keys: tuple[str, ...]) -> None:
    """Paths under ``keys`` of a config ``section`` (if it is a mapping), made relative to the file."""
    if isinstance(section, dict):
        for key in keys:
            if key in section:
                section[key] = _resolve(base, section[key])


def parse_settings(text: str, *, source: str, base_dir: Path) -> Settings:
    data, node = parse_yaml(text, source=source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a mapping (clusters:, policyFile:, ...)")
    # Relative paths in the file are relative to the file, not to wherever the broker starts.
    for cluster in data.get("clusters") or []:
        if isinstance(cluster, dict) and "kubeconfig" in cluster:
            cluster["kubeconfig"] = _resolve(base_dir, cluster["kubeconfig"])
    identity = data.get("identity")
    for issuer in (identity.get("issuers") or []) if isinstance(identity, dict) else []:
        if isinstance(issuer, dict) and "caFile" in issuer:
            issuer["caFile"] = _resolve(base_dir, issuer["caFile"])
    broker = data.get("broker")
    _resolve_keys(base_dir, broker.get("tls") if isinstance(broker, dict) else None, ("certFile", "keyFile"))
    _resolve_keys(base_dir, data.get("jwtIssuer"), ("keyDir", "certificateAuthorityFile"))
    web = data.get("web")
    if isinstance(web, dict) and "clientSecretFile" in web:
        web["clientSecretFile"] = _resolve(base_dir, web["clientSecretFile"])
    audit = data.get("audit")
    if isinstance(audit, dict) and "checkpointKeyFile" in audit:
        audit["checkpointKeyFile"] = _resolve(base_dir, audit["checkpointKeyFile"])
    for key in ("policyFile", "dataDir"):
        if key in data:
            data[key] = _resolve(base_dir, data[key])
    resolve_paths(data.get("audit"), lambda value: _resolve(base_dir, value))
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        # A sink's type tag appears in pydantic's location but is not a key of the YAML.
        loc = [p for p in first["loc"] if isinstance(p, (str, int)) and p not in SINK_TYPES]
        field = ".".join(str(p) for p in loc) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(
            f"{where(source, node, loc, at_key=first['type'] == 'extra_forbidden')}: {field}: {first['msg']}{more}",
            hint="See docs/configuration.md for every setting.",
        ) from exc


def load_settings(path: str | Path) -> Settings:
    file = Path(path).expanduser()
    text = read_text(str(file), what="config")
    return parse_settings(text, source=str(file), base_dir=file.resolve().parent)
