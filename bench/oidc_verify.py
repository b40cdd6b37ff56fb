"""Cost of authenticating a request with an OIDC token, measured side by side in one run: verification
per algorithm (keys cached), the dev issuer for comparison, a refused token (alg none, unknown kid),
and per-person accounting with and without its once-a-minute throttle. Prints figures; never fails.

    .venv/bin/python bench/oidc_verify.py [--n 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
from joserfc.jwk import ECKey

from kubejit.clock import SystemClock
from kubejit.errors import AuthenticationFailed
from kubejit.identity.claims import ClaimMapping
from kubejit.identity.dev_issuer import DevIssuer
from kubejit.identity.discovery import JwksCache
from kubejit.identity.oidc import IssuerSet, OIDCIssuer, OIDCVerifier
from kubejit.identity.principal import Principal
from kubejit.store import create_store_engine, upgrade
from kubejit.store.users import SqlUserDirectory
from kubejit.testing.oidc_issuer import LocalIssuer


def per_second(label: str, n: int, action: Callable[[], object], baseline: float | None = None) -> float:
    action()  # warm: keys fetched, code paths loaded
    start = time.perf_counter()
    for _ in range(n):
        action()
    elapsed = time.perf_counter() - start
    rate = n / elapsed
    ratio = f"  ({baseline / rate:.2f}x the time of the first row)" if baseline else ""
    print(f"{label:<48} {rate:>10,.0f}/s  {elapsed / n * 1e6:>8.1f} us each{ratio}")
    return rate


def refused(action: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        try:
            action()
        except AuthenticationFailed:
            return None
        raise AssertionError("a hostile token was accepted")

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    n = parser.parse_args().n
    clock = SystemClock()
    with LocalIssuer(path="/bench") as idp, httpx.Client() as http:
        cache = JwksCache(idp.url, http=http)
        mapping = ClaimMapping(issuer_name="corp", prefix="corp:")
        verifier = OIDCVerifier(
            OIDCIssuer(url=idp.url, audience="kubejit", mapping=mapping), keys=cache, clock=clock
        )
        dev = DevIssuer(
            users={"alice": frozenset({"dev"})},
            key=ECKey.generate_key("P-256", parameters={"kid": "dev-1"}, private=True),
            issuer="http://127.0.0.1:1/dev",
            clock=clock,
        )
        issuers = IssuerSet([verifier], dev=dev, dev_issuer_url=dev.rules.issuer)
        person = {"sub": "alice", "aud": "kubejit", "groups": ["developers"]}
        tokens = {"RS256": idp.issue(person, ttl=3600)}
        tokens["ES256"] = idp.issue(person, ttl=3600, key=idp.add_key("EC"))
        tokens["EdDSA"] = idp.issue(person, ttl=3600, key=idp.add_key("OKP"))
        print(f"{n} authentications each, keys cached after a warm-up call")
        base = per_second(
            "OIDC RS256 (IssuerSet.authenticate)", n, lambda: issuers.authenticate(tokens["RS256"])
        )
        per_second("OIDC ES256", n, lambda: issuers.authenticate(tokens["ES256"]), base)
        per_second("OIDC EdDSA", n, lambda: issuers.authenticate(tokens["EdDSA"]), base)
        dev_token = dev.issue("alice")
        per_second("dev issuer ES256", n, lambda: issuers.authenticate(dev_token), base)
        none = tokens["RS256"].split(".")
        alg_none = "eyJhbGciOiJub25lIn0." + none[1] + "."
        per_second("refused: alg none", n, refused(lambda: issuers.authenticate(alg_none)), base)
        stranger = LocalIssuer(path="/bench")
        stranger.rotate()
        unknown = stranger.issue({**person, "iss": idp.url})
        stranger.stop()
        per_second(
            "refused: unknown kid (refetch rate limited)",
            n,
            refused(lambda: issuers.authenticate(unknown)),
            base,
        )
        print(f"JWKS fetches during the whole run: {cache.fetches}")
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_store_engine(f"sqlite:///{Path(tmp) / 'kubejit.db'}")
        upgrade(engine)
        who = Principal(name="corp:alice", groups=frozenset({"corp:developers"}), issuer="corp")
        throttled = SqlUserDirectory(engine, clock=clock)
        every_time = SqlUserDirectory(engine, clock=clock, min_interval=timedelta(0))
        print(f"per-person accounting on SQLite, {n} requests by one person")
        base = per_second("users.seen, throttled (1 write/minute)", n, lambda: throttled.seen(who))
        per_second("users.seen, a write every request", n, lambda: every_time.seen(who), base)
        engine.dispose()


if __name__ == "__main__":
    main()
