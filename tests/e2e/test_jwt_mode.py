"""jwt mode end to end: real kube-apiservers that trust kubejit as a JWT issuer, the broker over
HTTPS, the CLI and kubectl (through the exec plugin) as processes.

Two control planes start with the AuthenticationConfiguration `kubejit cluster-setup --mode jwt`
prints, each for its own audience. The bad tokens are minted here with joserfc, with the broker's
real signing key where only one claim is wrong, so each refusal is the API server's own check of
that claim (a well-formed control token with the same key is accepted).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from joserfc import jws, jwt
from joserfc.jwk import ECKey
from lightkube import Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import RoleRef, Subject
from lightkube.resources.core_v1 import ServiceAccount
from lightkube.resources.rbac_authorization_v1 import RoleBinding

from kubejit.clock import SystemClock
from kubejit.clusters.bootstrap import install_broker
from kubejit.clusters.jwt_setup import authentication_configuration, jwt_authenticator, to_yaml
from kubejit.identity.cluster_keys import ClusterKeyRing
from kubejit.testing.certs import ServingTls, write_serving_tls
from kubejit.testing.controlplane import ControlPlane, ControlPlaneBinaries
from kubejit.testing.kubectl import KubectlResult, RedactedToken, kubectl_with_token
from kubejit.testing.processes import free_port
from tests.broker_identity import BrokerIdentity
from tests.broker_process import Broker
from tests.e2e.conftest import owned_objects
from tests.polling import eventually, poll

pytestmark = pytest.mark.e2e

LIFETIME_MINUTES = 1
CAP_SECONDS = LIFETIME_MINUTES * 60
PREFIX = "kubejit:"


@dataclass
class JwtWorld:
    broker: Broker
    planes: dict[str, ControlPlane]
    tls: ServingTls
    issuer_url: str

    @property
    def a(self) -> ControlPlane:
        return self.planes["kubejit-jwt-a"]

    @property
    def b(self) -> ControlPlane:
        return self.planes["kubejit-jwt-b"]

    @property
    def key_dir(self) -> Path:
        return self.broker.workdir / "data" / "jwt-issuer-keys"

    def ring(self) -> ClusterKeyRing:
        """The broker's key ring, read from its directory as a second replica would."""
        return ClusterKeyRing(
            self.key_dir, clock=SystemClock(), overlap_seconds=CAP_SECONDS, rotate_after_seconds=86400
        )


def audience(plane: ControlPlane) -> str:
    return f"kubejit:{plane.name}"


@pytest.fixture(scope="module")
def jwt_world(
    tmp_path_factory: pytest.TempPathFactory, control_plane_binaries: ControlPlaneBinaries
) -> Iterator[JwtWorld]:
    root = tmp_path_factory.mktemp("jwt-mode")
    tls = write_serving_tls(root / "tls", name="kubejit-broker")
    port = free_port()
    issuer_url = f"https://127.0.0.1:{port}/k8s"
    planes: dict[str, ControlPlane] = {}
    broker: Broker | None = None
    try:
        identities = []
        for name in ("kubejit-jwt-a", "kubejit-jwt-b"):
            entry = jwt_authenticator(
                issuer_url=issuer_url,
                audience=f"kubejit:{name}",
                ca_pem=tls.ca_cert.read_text(),
                username_prefix=PREFIX,
                max_lifetime_seconds=CAP_SECONDS,
            )
            plane = ControlPlane(
                root / name,
                name=name,
                binaries=control_plane_binaries,
                authentication_config=to_yaml(authentication_configuration([entry])),
            )
            planes[name] = plane.start()
            with Client(KubeConfig.from_file(plane.kubeconfig_path), trust_env=False) as admin:
                installed = install_broker(
                    admin,
                    cluster=name,
                    out=root / f"{name}-broker.kubeconfig",
                    token_seconds=3600,
                    mode="jwt",
                )
            identities.append(BrokerIdentity(plane=plane, kubeconfig_path=installed.kubeconfig_path))
        broker = Broker(
            root / "broker",
            identities,
            port=port,
            tls_ca=tls.ca_cert,
            cluster_extra={
                p.name: {"credentialMode": "jwt", "audience": audience(p)} for p in planes.values()
            },
            extra_config={
                "broker": {"tls": {"certFile": str(tls.cert), "keyFile": str(tls.key)}},
                "jwtIssuer": {
                    "tokenLifetimeMinutes": LIFETIME_MINUTES,
                    "certificateAuthorityFile": str(tls.ca_cert),
                },
            },
        )
        broker.workdir.mkdir()
        broker.start()
        yield JwtWorld(broker=broker, planes=planes, tls=tls, issuer_url=issuer_url)
    finally:
        if broker is not None:
            broker.stop()
        for plane in planes.values():
            plane.stop()


def kubectl(plane: ControlPlane, token: str, *args: str) -> KubectlResult:
    return kubectl_with_token(list(args), server=plane.server, ca_path=plane.ca_path, token=token)


def whoami(plane: ControlPlane, token: str) -> dict[str, Any]:
    result = kubectl(plane, token, "auth", "whoami", "-o", "json")
    assert result.ok, result.stderr
    return dict(json.loads(result.stdout)["status"]["userInfo"])


def accepted(plane: ControlPlane, token: str) -> bool:
    """The API server authenticated the token (the JWKS may still be on its way at start)."""
    return kubectl(plane, token, "auth", "whoami").ok


def request(world: JwtWorld, plane: ControlPlane, namespace: str, *extra: str) -> dict[str, Any]:
    world.broker.login("alice")
    grant: dict[str, Any] = world.broker.json(
        "alice", "request", "-c", plane.name, "-n", namespace, "-r", "view", "--reason", "jwt e2e", *extra
    )
    assert grant["state"] == "active"
    return grant


def claims_for(world: JwtWorld, grant_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": world.issuer_url,
        "aud": audience(world.a),
        "sub": "alice",
        "groups": [f"kubejit:grant:{grant_id}"],
        "iat": now,
        "nbf": now,
        "exp": now + 30,
        "jti": secrets.token_hex(8),
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def sign(claims: dict[str, Any], key: ECKey, kid: str) -> RedactedToken:
    return RedactedToken(jwt.encode({"alg": "ES256", "kid": kid, "typ": "JWT"}, claims, key))


def test_kubectl_through_the_exec_plugin_works_as_the_person_in_the_granted_namespace_only(
    jwt_world: JwtWorld,
    namespaces: Callable[..., list[str]],
    admin_client_for: Callable[[ControlPlane], Client],
) -> None:
    world, plane = jwt_world, jwt_world.a
    granted, other = namespaces(plane, 2)
    grant = request(world, plane, granted, "--use")
    token = RedactedToken(world.broker.grant_token("alice", grant["id"]))
    eventually(lambda: accepted(plane, token), what="the API server trusts kubejit's issuer", within=60)

    who = poll(
        lambda: world.broker.kubectl("alice", "auth", "whoami", "-o", "json"), lambda r: r.returncode == 0
    )
    assert who.returncode == 0, who.stderr
    user = json.loads(who.stdout)["status"]["userInfo"]
    assert user["username"] == "kubejit:alice"
    assert set(user["groups"]) == {f"kubejit:grant:{grant['id']}", "system:authenticated"}

    assert world.broker.kubectl("alice", "get", "configmaps").returncode == 0  # the context's namespace
    elsewhere = world.broker.kubectl("alice", "get", "configmaps", "-n", other)
    assert elsewhere.returncode != 0 and "forbidden" in elsewhere.stderr.lower()
    assert "kubejit:alice" in elsewhere.stderr  # RBAC names the person, not an account
    why = world.broker.cli("alice", "why", "--", "get", "configmaps", "-n", other, check=False)
    wanted = f"kubejit request --cluster {plane.name} --namespace {other} --role view"
    assert why.returncode == 3 and f"To get this access run: {wanted}" in why.stdout, why.stdout
    assert kubectl(plane, token, "create", "configmap", "x", "-n", granted).forbidden  # beyond view

    # No ServiceAccount, only the group binding.
    admin = admin_client_for(plane)
    assert owned_objects(admin, grant["id"]) == [f"RoleBinding/{granted}/kubejit-{grant['id']}"]
    assert list(admin.list(ServiceAccount, namespace="kubejit-grants")) == []

    # The other cluster trusts the same issuer for its own audience only.
    eventually(lambda: accepted(world.b, sign(claims_for(world, "g0", aud=audience(world.b)), *_signing(world))),
               what="cluster b trusts kubejit's issuer", within=60)  # fmt: skip
    assert kubectl(world.b, token, "get", "configmaps", "-n", granted).unauthorized

    # The API server's audit log names the person.
    eventually(
        lambda: '"username":"kubejit:alice"' in plane.audit_log_path.read_text(), what="audit names alice"
    )


def _signing(world: JwtWorld) -> tuple[ECKey, str]:
    signing = world.ring().signing_key()
    return signing.key, signing.kid


def _late(now: int) -> dict[str, Any]:
    return {"exp": now + CAP_SECONDS + 300}


def _expired(now: int) -> dict[str, Any]:
    return {"iat": now - 120, "nbf": now - 120, "exp": now - 60}


#: What is wrong with each token, as claim changes given the time of minting.
BAD_TOKENS: dict[str, Callable[[int], dict[str, Any]]] = {
    "wrong aud": lambda now: {"aud": "kubejit:kubejit-jwt-b"},
    "wrong iss": lambda now: {"iss": "https://127.0.0.1:1/k8s"},
    "lifetime over the cap": _late,
    "no group": lambda now: {"groups": None},
    "two groups": lambda now: {"groups": ["kubejit:grant:g1", "system:masters"]},
    "a group not kubejit's": lambda now: {"groups": ["system:masters"]},
    "no jti": lambda now: {"jti": None},
    "expired": _expired,
}


@pytest.mark.parametrize("why", list(BAD_TOKENS))
def test_the_api_server_refuses_what_kubejit_would_never_mint(
    jwt_world: JwtWorld, namespaces: Callable[..., list[str]], why: str
) -> None:
    world, plane = jwt_world, jwt_world.a
    (ns,) = namespaces(plane, 1)
    grant = request(world, plane, ns)
    key, kid = _signing(world)
    control = sign(claims_for(world, grant["id"]), key, kid)
    eventually(lambda: accepted(plane, control), what="the well-formed control token is accepted", within=60)
    assert kubectl(plane, control, "get", "configmaps", "-n", ns).ok
    bad = sign(claims_for(world, grant["id"], **BAD_TOKENS[why](int(time.time()))), key, kid)
    assert kubectl(plane, bad, "get", "configmaps", "-n", ns).unauthorized, why


def test_a_bad_signature_is_refused(jwt_world: JwtWorld, namespaces: Callable[..., list[str]]) -> None:
    world, plane = jwt_world, jwt_world.a
    (ns,) = namespaces(plane, 1)
    grant = request(world, plane, ns)
    _, kid = _signing(world)
    stranger = ECKey.generate_key("P-256", private=True)
    forged = sign(claims_for(world, grant["id"]), stranger, kid)  # the real kid, another key
    real = RedactedToken(world.broker.grant_token("alice", grant["id"]))
    eventually(lambda: accepted(plane, real), what="the broker's token is accepted", within=60)
    assert kubectl(plane, forged, "get", "configmaps", "-n", ns).unauthorized
    head, payload, _ = real.split(".")
    tampered = RedactedToken(f"{head}.{payload}.{forged.split('.')[2]}")
    assert kubectl(plane, tampered, "get", "configmaps", "-n", ns).unauthorized


def test_revoke_is_forbidden_at_once_and_expiry_ends_access(
    jwt_world: JwtWorld,
    namespaces: Callable[..., list[str]],
    admin_client_for: Callable[[ControlPlane], Client],
) -> None:
    world, plane = jwt_world, jwt_world.a
    (ns,) = namespaces(plane, 1)
    grant = request(world, plane, ns)
    token = RedactedToken(world.broker.grant_token("alice", grant["id"]))
    eventually(lambda: kubectl(plane, token, "get", "configmaps", "-n", ns).ok, what="access", within=60)
    world.broker.json("alice", "revoke", grant["id"], "--reason", "done")
    began = time.monotonic()
    eventually(
        lambda: kubectl(plane, token, "get", "configmaps", "-n", ns).forbidden, what="Forbidden after revoke"
    )
    assert time.monotonic() - began < 10  # RBAC follows its informer: not the 10 s token cache
    assert owned_objects(admin_client_for(plane), grant["id"]) == []

    # Expiry: the sweeper deletes the bindings; the token (minted to end with the grant) dies too.
    short = world.broker.json(
        "alice", "request", "-c", plane.name, "-n", ns, "-r", "view", "--reason", "expiry", "--for", "20s"
    )
    expiring = RedactedToken(world.broker.grant_token("alice", short["id"]))
    assert kubectl(plane, expiring, "get", "configmaps", "-n", ns).ok
    eventually(
        lambda: owned_objects(admin_client_for(plane), short["id"]) == [], what="bindings gone at expiry"
    )
    ended = kubectl(plane, expiring, "get", "configmaps", "-n", ns)
    assert ended.forbidden or ended.unauthorized, ended.stderr
    eventually(
        lambda: kubectl(plane, expiring, "get", "configmaps", "-n", ns).unauthorized, what="the token expired"
    )


def test_key_rotation_keeps_live_sessions_working(
    jwt_world: JwtWorld, namespaces: Callable[..., list[str]]
) -> None:
    world, plane = jwt_world, jwt_world.a
    (ns,) = namespaces(plane, 1)
    grant = request(world, plane, ns, "--use")
    before = RedactedToken(world.broker.grant_token("alice", grant["id"]))
    eventually(lambda: kubectl(plane, before, "get", "configmaps", "-n", ns).ok, what="access", within=60)
    assert world.broker.kubectl("alice", "get", "configmaps").returncode == 0
    old_kid = jws.extract_compact(before.encode()).headers()["kid"]

    new_kid = world.ring().rotate().kid  # as `kubejit` on another replica would: a new file in keyDir
    after = RedactedToken(world.broker.grant_token("alice", grant["id"]))
    assert jws.extract_compact(after.encode()).headers()["kid"] == new_kid != old_kid
    # The API server meets an unknown kid and fetches the JWKS again; the old key is still in it.
    eventually(lambda: kubectl(plane, after, "get", "configmaps", "-n", ns).ok, what="new key accepted")
    assert kubectl(plane, before, "get", "configmaps", "-n", ns).ok
    # The exec plugin's session (kubectl on the grant's context) carries on across the rotation.
    assert world.broker.kubectl("alice", "get", "configmaps").returncode == 0


def test_the_reconciler_restores_and_removes_group_bindings(
    jwt_world: JwtWorld,
    namespaces: Callable[..., list[str]],
    admin_client_for: Callable[[ControlPlane], Client],
) -> None:
    world, plane = jwt_world, jwt_world.a
    admin = admin_client_for(plane)
    (ns,) = namespaces(plane, 1)
    grant = request(world, plane, ns)
    name = f"kubejit-{grant['id']}"
    admin.delete(RoleBinding, name, namespace=ns)  # lost, as after a crash or a stray delete
    orphan = RoleBinding(
        metadata=ObjectMeta(
            name="kubejit-gdead00000001",
            namespace=ns,
            labels={"app.kubernetes.io/managed-by": "kubejit", "kubejit.io/grant": "gdead00000001"},
        ),
        roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
        subjects=[
            Subject(kind="Group", name="kubejit:grant:gdead00000001", apiGroup="rbac.authorization.k8s.io")
        ],
    )
    admin.create(orphan)  # a grant that ended while the broker was down
    eventually(
        lambda: (
            owned_objects(admin).count(f"RoleBinding/{ns}/{name}") == 1
            and f"RoleBinding/{ns}/kubejit-gdead00000001" not in owned_objects(admin)
        ),
        what="the reconciler restored the grant's binding and deleted the orphan",
    )
    token = RedactedToken(world.broker.grant_token("alice", grant["id"]))
    eventually(lambda: kubectl(plane, token, "get", "configmaps", "-n", ns).ok, what="access restored")


def test_a_jwt_grant_cannot_bind_a_role_that_would_outlive_it(
    jwt_world: JwtWorld,
    namespaces: Callable[..., list[str]],
    admin_client_for: Callable[[ControlPlane], Client],
) -> None:
    """The grant limits match jwt mode's identities too (the `kubejit:grant:` group). To reach the
    admission policy at all the grant's group needs the RBAC right, given here by cluster-admin as a
    too-wide role would; with it, real kubectl is still refused, and nothing is made."""
    world, plane = jwt_world, jwt_world.a
    (ns,) = namespaces(plane, 1)
    grant = request(world, plane, ns)
    token = RedactedToken(world.broker.grant_token("alice", grant["id"]))
    eventually(lambda: kubectl(plane, token, "get", "configmaps", "-n", ns).ok, what="access", within=60)
    admin = admin_client_for(plane)
    admin.create(
        RoleBinding(
            metadata=ObjectMeta(name="too-wide", namespace=ns),
            roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="admin"),
            subjects=[
                Subject(
                    kind="Group", name=f"kubejit:grant:{grant['id']}", apiGroup="rbac.authorization.k8s.io"
                )
            ],
        )
    )
    eventually(lambda: kubectl(plane, token, "create", "configmap", "x", "-n", ns).ok, what="admin rights")
    refused = kubectl(
        plane, token, "create", "rolebinding", "way-back", "--clusterrole=admin", "--user=alice", "-n", ns
    )
    assert not refused.ok and "kubejit-grant-limits" in refused.stderr, refused.stderr
    assert "may not change RBAC" in refused.stderr
    names = {b.metadata.name for b in admin.list(RoleBinding, namespace=ns) if b.metadata}
    assert "way-back" not in names
    world.broker.json("alice", "revoke", grant["id"], "--reason", "done")
