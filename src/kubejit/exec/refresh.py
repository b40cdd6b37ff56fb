"""The refresh path of ``kubejit token``: what runs when the cached path has no fresh token to serve.

Under one ``flock`` per cache entry it re-reads the entry (a concurrent kubectl process may have just
refreshed it, so 50 parallel kubectl calls cause one broker call), then asks the broker for the
grant and a token. Everything the user must act on becomes one message on stderr naming the next
command (kubectl prints the plugin's stderr) and exit code 1: the plugin never prompts.

A per-broker back-off file (1 s doubling to 30 s) makes calls fail fast while the broker is down, and
a still-valid cached token keeps being served meanwhile. Only the standard library is used (urllib,
not httpx): a cold call costs one interpreter plus the two HTTP round trips.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, NoReturn

from kubejit.exec.broker import BrokerApi
from kubejit.exec.cache import (
    CachePaths,
    forget_markers,
    is_fresh,
    mark_served,
    read_entry,
    remove,
    render_entry,
    session_stamp,
)
from kubejit.exec.plugin import PluginArgs, credential, said, tombstone_text
from kubejit.local.private_files import FileLock, private_dir, write_private

if TYPE_CHECKING:
    from kubejit.local.session import Session
    from kubejit.local.wire import GrantWire, TokenWire

#: Refresh this long before a token expires (clock skew between this machine and the API server)...
SKEW_SECONDS = 60.0
#: ...or this fraction of the token's lifetime, if smaller.
SKEW_FRACTION = 0.1
#: A token the API server rejects although the broker minted it this recently is not minted again.
RECENT_MINT_SECONDS = 30.0
BACKOFF_MAX_SECONDS = 30.0
LOCK_WAIT_SECONDS = 60.0
ENDED_STATES = frozenset({"expired", "revoked", "denied", "failed"})


def _say(message: str, hint: str | None) -> None:
    sys.stderr.write(said(message, hint))


def refresh(args: PluginArgs, api_version: str, *, from_client_go: bool, rejected: str | None) -> int:
    """Under the entry's lock: re-read, then serve, fetch from the broker, or explain and exit 1."""
    from kubejit.local import session as sessions

    login = sessions.load()
    broker = args.broker or (login.broker.rstrip("/") if login else None) or sessions.DEFAULT_BROKER
    paths = CachePaths(args.grant, broker)
    ensure_private_dir(paths.root)
    with FileLock(paths.lock, wait_seconds=LOCK_WAIT_SECONDS, on_timeout=_lock_timeout):
        fields, problem = read_entry(paths.entry)
        if problem is not None:
            _say(f"warning: the token cache file {paths.entry} {problem}; it was removed", None)
            remove(paths.entry)
        if fields is not None and fields["kind"] == "ended":
            sys.stderr.write(tombstone_text(fields["body"]))
            return 1
        session = _require_session(login, broker, paths)
        if fields is not None and fields["user"] != session.user:
            remove(paths.entry)
            fields = None
        if fields is not None and is_fresh(fields) and fields["serial"] != rejected:
            if fields["session"] != session_stamp():
                fields["session"] = session_stamp()
                write_private(paths.entry, render_entry(fields))
            return _emit(paths, fields, api_version, from_client_go=from_client_go)
        return _from_broker(paths, fields, session, api_version, from_client_go, rejected)


def _require_session(login: Session | None, broker: str, paths: CachePaths) -> Session:
    from kubejit.errors import AuthenticationFailed

    if login is None:
        remove(paths.entry)
        raise AuthenticationFailed(
            "you are not logged in to kubejit",
            hint=f"Run `kubejit login --broker {broker}`, then kubectl again.",
        )
    if login.broker.rstrip("/") != broker:
        raise AuthenticationFailed(
            f"you are logged in to the broker {login.broker}, but this grant lives on {broker}",
            hint=f"Run `kubejit login --broker {broker}`.",
        )
    return login


def _from_broker(
    paths: CachePaths,
    fields: dict[str, str] | None,
    session: Session,
    api_version: str,
    from_client_go: bool,
    rejected: str | None,
) -> int:
    from kubejit.errors import BrokerUnreachable, RateLimited

    now = time.time()
    usable = fields if fields is not None and fields["serial"] != rejected else None
    try:
        wait_for_backoff(paths, session.broker, now=now)
    except BrokerUnreachable as exc:
        return _broker_down(paths, usable, exc, api_version, from_client_go=from_client_go, now=now)
    api = BrokerApi(session.broker, fresh_login(session).token)
    try:
        ended = None
        if rejected is not None and fields is not None:
            ended = _refuse_remint(api, paths.grant, fields, broker=session.broker, now=now)
        token, grant = (None, ended) if ended is not None else _mint(api, paths.grant)
    except (BrokerUnreachable, RateLimited) as exc:  # a 429 too: back off, serve a still-valid token
        note_broker_down(paths, exc.message, now=now)
        return _broker_down(paths, usable, exc, api_version, from_client_go=from_client_go, now=now)
    clear_backoff(paths)
    if token is None:
        return _grant_not_usable(paths, grant, state_message(grant, broker=session.broker))
    fresh = token_entry(grant, token, now=now, user=session.user, stamp=session_stamp())
    write_private(paths.entry, render_entry(fresh))
    forget_markers(paths, keep=fresh["serial"])
    return _emit(paths, fresh, api_version, from_client_go=from_client_go)


def fresh_login(session: Session) -> Session:
    """An OIDC login's ID token is renewed (with its refresh token) before the broker sees it, as every
    CLI command does; only on the way to the broker, never when a cached token is served."""
    if not session.issuer_url:
        return session
    from kubejit.local import session as sessions

    return sessions.require()


def _mint(api: BrokerApi, grant_id: str) -> tuple[TokenWire | None, GrantWire]:
    """One round trip for an active grant: the token answer carries the grant's state and end. When
    there is no token (409: pending, approved, ended) the grant is fetched to say why."""
    from kubejit.errors import Conflict

    try:
        token = api.mint_token(grant_id)
    except Conflict:
        grant = api.get_grant(grant_id)
        if grant.get("state") == "active":
            raise
        return None, grant
    if "state" not in token:  # a broker older than the token answer's state and end
        return token, api.get_grant(grant_id)
    return token, {"id": grant_id, "state": token["state"], "expires_at": token.get("expires_at")}


def _refuse_remint(
    api: BrokerApi, grant_id: str, rejected: dict[str, str], *, broker: str, now: float
) -> GrantWire | None:
    """The API server refused a token minted moments ago. If the grant is still active, another token
    would fare no better (wrong cluster entry?), so explain instead of minting in a loop; if it is not,
    return it (its state is the explanation). None: minted long enough ago to just try again."""
    from kubejit.errors import Conflict

    if now - float(rejected["minted_at"]) >= RECENT_MINT_SECONDS:
        return None
    grant = api.get_grant(grant_id)
    if state_message(grant, broker=broker) is not None:
        return grant
    raise Conflict(
        f"the API server rejected the token of grant {grant['id']}, which is active and was minted "
        f"{now - float(rejected['minted_at']):.0f}s ago",
        hint="If the grant was just revoked, kubectl says so on the next try; otherwise check that the "
        f"context's cluster is the broker's {grant['cluster']} (`kubejit kubeconfig` rewrites it).",
    )


def _broker_down(
    paths: CachePaths,
    usable: dict[str, str] | None,
    exc: Exception,
    api_version: str,
    *,
    from_client_go: bool,
    now: float,
) -> int:
    """Keep kubectl working on a still-valid cached token; otherwise fail fast with the reason."""
    if usable is None or float(usable["not_after"]) <= now + 5:
        raise exc
    until = clock(float(usable["not_after"]))
    _say(f"warning: {exc}; using the cached token, valid until {until}", None)
    return _emit(paths, stale_until_expiry(usable), api_version, from_client_go=from_client_go)


def _grant_not_usable(paths: CachePaths, grant: GrantWire, message: tuple[str, str] | None) -> int:
    text, hint = message or (f"grant {grant['id']} is active but the broker sent no token", "Retry.")
    if grant["state"] in ENDED_STATES:  # final: drop the token, keep the explanation
        tombstone = {"kind": "ended", "state": str(grant["state"]), "body": said(text, hint)}
        write_private(paths.entry, render_entry(tombstone))
        forget_markers(paths, keep=None)
    _say(text, hint)
    return 1


def _emit(paths: CachePaths, fields: dict[str, str], api_version: str, *, from_client_go: bool) -> int:
    if from_client_go:
        mark_served(paths, fields["serial"])
    sys.stdout.write(credential(api_version, fields["body"]))
    return 0


def state_message(grant: GrantWire, *, broker: str) -> tuple[str, str] | None:
    """What to tell the user when the grant cannot give a token now; None when it is active."""
    state = grant["state"]
    where = ", ".join(grant["namespaces"]) or "all namespaces"
    what = f"grant {grant['id']} ({grant['role']} in {where} on cluster {grant['cluster']})"
    again = f"To get access again run: {request_command(grant)}"
    by = f" by {grant['ended_by']}" if grant.get("ended_by") else ""
    reason = f": {grant['end_reason']}" if grant.get("end_reason") else ""
    if state == "active":
        return None
    if state == "pending":
        votes = f"{len(grant.get('approvals', []))}/{grant.get('approvals_required', '?')}"
        return (
            f"{what} is waiting for approval ({votes} approvals)",
            f"Approvers run `kubejit approve {grant['id']}`; kubectl works once it is approved "
            "(`kubejit grants` shows where it stands).",
        )
    if state == "approved":
        return f"{what} is approved and being activated", "Run kubectl again in a few seconds."
    if state == "expired":
        return f"{what} expired{reason}", again
    if state == "revoked":
        return f"{what} was revoked{by}{reason}", again
    if state == "denied":
        return f"{what} was denied{by}{reason}", again
    if state == "failed":
        return f"{what} could not be activated{reason}", again
    return f"{what} is in the unknown state {state!r} at {broker}", "Upgrade kubejit (`kubejit --version`)."


def request_command(grant: GrantWire) -> str:
    namespaces = " ".join(f"--namespace {ns}" for ns in grant["namespaces"])
    return f"kubejit request --cluster {grant['cluster']} {namespaces} --role {grant['role']}"


def token_entry(grant: GrantWire, token: TokenWire, *, now: float, user: str, stamp: str) -> dict[str, str]:
    """The cache entry of a fresh token: served until ``refresh_at``, which kubectl is also told."""
    import json

    token_end = parse_time(str(token["expiration_timestamp"]))
    ends = grant.get("expires_at")
    grant_end = parse_time(ends) if ends else token_end
    refresh_at = refresh_time(now=now, token_end=token_end, grant_end=grant_end)
    status = {"token": str(token["token"]), "expirationTimestamp": rfc3339(refresh_at)}
    return {
        "kind": "token",
        "refresh_at": repr(refresh_at),
        "not_after": repr(min(token_end, grant_end)),
        "minted_at": repr(now),
        "session": stamp,
        "user": user,
        "serial": serial_of(str(token.get("token_id") or "")) or f"t{int(now * 1000):x}",
        "body": json.dumps(status, separators=(",", ":")),
    }


def refresh_time(*, now: float, token_end: float, grant_end: float) -> float:
    """Before the token expires, by the skew margin; but a token that outlives the grant is kept to the
    grant's end, since a new one would not outlive it either (and then the grant is over)."""
    if grant_end <= token_end:
        return grant_end
    margin = min(SKEW_SECONDS, SKEW_FRACTION * max(token_end - now, 0.0))
    return token_end - margin


def stale_until_expiry(fields: dict[str, str]) -> dict[str, str]:
    """The entry re-labelled to expire at the token's real end: kubectl keeps it, the broker is down."""
    import json

    status = json.loads(fields["body"])
    status["expirationTimestamp"] = rfc3339(float(fields["not_after"]))
    return {**fields, "body": json.dumps(status, separators=(",", ":"))}


def serial_of(token_id: str) -> str:
    return "".join(c for c in token_id if c.isascii() and c.isalnum())[:24]


def parse_time(value: str) -> float:
    from datetime import UTC, datetime

    moment = datetime.fromisoformat(value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def rfc3339(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def clock(epoch: float) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(epoch))


def ensure_private_dir(path: str) -> None:
    from kubejit.errors import ConfigError

    try:
        private_dir(path)
    except OSError as exc:
        raise ConfigError(
            f"cannot use the token cache folder {path}: {exc.strerror}",
            hint="Make it writable by you, or point XDG_CACHE_HOME elsewhere.",
        ) from exc


def _lock_timeout(path: str) -> NoReturn:
    from kubejit.errors import ConfigError

    raise ConfigError(
        f"another `kubejit token` held {path} for {LOCK_WAIT_SECONDS:.0f}s",
        hint="A kubejit process is stuck talking to the broker; end it, or delete the lock file.",
    )


# -- back-off --------------------------------------------------------------------------------------


def wait_for_backoff(paths: CachePaths, broker: str, *, now: float) -> None:
    """Fail fast while a recent attempt found the broker down: one probe per back-off period."""
    from kubejit.errors import BrokerUnreachable

    fields = read_entry_lines(paths.down)
    until = float(fields.get("until", "0") or 0)
    if now < until:
        raise BrokerUnreachable(
            f"the kubejit broker at {broker} was unreachable at {clock(float(fields.get('at', now)))} "
            f"({fields.get('error', 'no answer')}); next try after {clock(until)}",
            hint="Check that the broker runs (`kubejit serve`) and is reachable; kubectl works again once "
            "it answers.",
        )


def note_broker_down(paths: CachePaths, error: str, *, now: float) -> None:
    previous = read_entry_lines(paths.down)
    failures = int(previous.get("failures", "0") or 0) + 1 if previous else 1
    delay = min(BACKOFF_MAX_SECONDS, 2.0 ** (failures - 1))
    text = f"failures {failures}\nat {now!r}\nuntil {now + delay!r}\nerror {error.replace(chr(10), ' ')}\n"
    write_private(paths.down, text)


def clear_backoff(paths: CachePaths) -> None:
    remove(paths.down)


def read_entry_lines(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as lines:
            return dict(line.rstrip("\n").partition(" ")[::2] for line in lines)
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
