"""The one exception tree of kubejit.

Every error a user can cause or fix is a ``KubejitError``: it carries a message, a ``hint`` (what to
do next), the HTTP status the API answers with, the CLI exit code and a stable machine ``code``.
The CLI prints ``Error: … / Hint: …`` without a traceback; the API answers problem+json.

    KubejitError
    ├── ConfigError                 invalid config file or settings (the broker refuses to start)
    │   └── PolicyError             invalid policy YAML (file:line:column)
    ├── InvalidInput                bad input from a user (HTTP body, CLI argument, duration, name)
    │   ├── RoleScopeMismatch       namespaces given for a cluster-wide role, or none for a namespaced one
    │   ├── MalformedRequest        a request body that is not even parseable (400)
    │   └── RequestTooLarge         a request body over the broker's limit (413)
    ├── AuthenticationFailed        no, expired or invalid credentials (401)
    ├── PermissionDenied            authenticated, but not allowed to do this (403)
    │   ├── RequestDenied           policy refused the request (names the rule)
    │   ├── ApprovalRefused         self-approval, approver not in an approver group, twice by one person
    │   ├── ReviewRefused           a break-glass review by its own holder, or by someone not a reviewer
    │   └── Locked                  an admin's lock (user, group or grant) refuses this principal
    ├── NotFound                    no such grant, cluster, user (404)
    ├── Conflict                    the grant is not in a state that allows this (409)
    │   ├── InvalidTransition
    │   └── TooManyOpenGrants       a person already holds the broker's cap of open grants
    ├── ClusterError                talking to a Kubernetes cluster failed
    │   ├── ClusterUnavailable      connection refused, 429, 5xx: transient, retried by the workers
    │   ├── ClusterForbidden        the broker's own RBAC lacks a permission: fail loudly, name the verb
    │   └── ClusterConflict         409 from the API server: re-read and retry
    ├── RateLimited                 too many requests from one source or principal (429, Retry-After)
    ├── StoreUnavailable            the database did not answer: transient, retried
    ├── AuditUnavailable            fail-closed: a required audit sink is behind, nothing activated (503)
    ├── SinkUnavailable             an audit sink did not acknowledge a batch: retried with backoff
    ├── BrokerUnreachable           the CLI cannot reach the broker
    └── DevClusterError             the local control plane cannot start (port in use, missing binary, …)
"""

from __future__ import annotations

from typing import ClassVar


class KubejitError(Exception):
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    code: ClassVar[str] = "internal"
    default_hint: ClassVar[str | None] = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message


class ConfigError(KubejitError):
    http_status = 500
    exit_code = 78  # EX_CONFIG
    code = "invalid-config"


class PolicyError(ConfigError):
    code = "invalid-policy"


class InvalidInput(KubejitError):
    http_status = 422
    exit_code = 2
    code = "invalid-input"


class RoleScopeMismatch(InvalidInput):
    """A namespaced role asked for without namespaces, or a cluster-wide one with some.

    Which roles are cluster-wide is the policy's word, so no schema can say it: the API's one
    refusal of a well-formed body that depends on configuration (docs/api.md).
    """

    code = "role-scope-mismatch"


class MalformedRequest(InvalidInput):
    """The body could not be parsed at all (not UTF-8, not JSON): 400, before any field is checked."""

    http_status = 400
    code = "malformed-request"
    default_hint = "Send a JSON object in UTF-8, as the API reference (/docs) shows."


class RequestTooLarge(InvalidInput):
    """Answered by the body-size middleware (server/limits.py) before any route reads the body."""

    http_status = 413
    code = "body-too-large"
    default_hint = "Send a shorter reason or comment: request bodies are small."


class AuthenticationFailed(KubejitError):
    http_status = 401
    exit_code = 4
    code = "unauthenticated"
    default_hint = "Log in again with `kubejit login`."


class PermissionDenied(KubejitError):
    http_status = 403
    exit_code = 3
    code = "forbidden"


class RequestDenied(PermissionDenied):
    code = "denied-by-policy"

    def __init__(self, message: str, *, rule: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.rule = rule


class ApprovalRefused(PermissionDenied):
    code = "approval-refused"


class ReviewRefused(PermissionDenied):
    """A break-glass grant's review by its holder (under any login), or by neither admin nor reviewer."""

    code = "review-refused"


class Locked(PermissionDenied):
    """An admin locked this user, one of their groups or this grant (offboarding, incident response)."""

    code = "locked"


class NotFound(KubejitError):
    http_status = 404
    exit_code = 5
    code = "not-found"


class Conflict(KubejitError):
    http_status = 409
    exit_code = 6
    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid-transition"


class TooManyOpenGrants(Conflict):
    """A person's pending, approved and active grants already reach ``broker.maxOpenGrantsPerPerson``."""

    code = "too-many-open-grants"
    default_hint = "Revoke grants you no longer need (`kubejit revoke <id>`), or wait until some end."


class ClusterError(KubejitError):
    http_status = 502
    exit_code = 7
    code = "cluster-error"


class ClusterUnavailable(ClusterError):
    http_status = 503
    code = "cluster-unavailable"
    default_hint = "The cluster's API server did not answer; kubejit retries in the background."


class ClusterForbidden(ClusterError):
    code = "cluster-forbidden"
    default_hint = "The broker's own RBAC lacks a permission: apply deploy/rbac.yaml to that cluster."


class ClusterConflict(ClusterError):
    http_status = 409
    code = "cluster-conflict"


class RateLimited(KubejitError):
    """Too many requests (or failed logins) from one source IP or principal: refused before any write."""

    http_status = 429
    exit_code = 13
    code = "rate-limited"
    default_hint = "Wait the number of seconds in Retry-After, then retry."

    def __init__(self, message: str, *, retry_after: int = 1, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        #: Whole seconds until the request would be admitted (the Retry-After header).
        self.retry_after = max(1, retry_after)


class StoreUnavailable(KubejitError):
    """The database did not answer (down, locked for too long): transient, worth retrying."""

    http_status = 503
    exit_code = 10
    code = "store-unavailable"
    default_hint = "Check that the database is reachable and not locked by another program, then retry."


class AuditUnavailable(KubejitError):
    """Fail-closed audit: a required sink has not acknowledged the record, so nothing is activated."""

    http_status = 503
    exit_code = 11
    code = "audit-unavailable"
    default_hint = (
        "The grant stays approved and is activated once the audit sink catches up; "
        "see `kubejit audit status`."
    )


class SinkUnavailable(KubejitError):
    """An audit sink did not acknowledge a batch (down, refused, timed out): the batch is sent again."""

    http_status = 502
    exit_code = 12
    code = "sink-unavailable"


class BrokerUnreachable(KubejitError):
    http_status = 503
    exit_code = 8
    code = "broker-unreachable"
    default_hint = "Is `kubejit serve` running? Check --broker or KUBEJIT_BROKER."


class DevClusterError(KubejitError):
    exit_code = 9
    code = "dev-cluster"


def error_class(code: object, status: int) -> type[KubejitError]:
    """The class a problem+json answer names by its ``code`` (each class above has its own), so the CLI
    and the exec plugin read the broker's errors alike; by HTTP status only when there is no known code
    (an older broker, a proxy in front of it, a framework error such as an unknown route)."""
    found = _BY_CODE.get(code) if isinstance(code, str) else None
    return found or _BY_STATUS.get(status, KubejitError)


def _by_code(root: type[KubejitError]) -> dict[str, type[KubejitError]]:
    table = {root.code: root}
    for sub in root.__subclasses__():
        if sub.__module__ == __name__:  # only this tree: a subclass elsewhere must not shadow a code
            table.update(_by_code(sub))
    return table


_BY_CODE = _by_code(KubejitError)
_BY_STATUS: dict[int, type[KubejitError]] = {
    400: InvalidInput,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: InvalidInput,
    422: InvalidInput,
    429: RateLimited,
    502: BrokerUnreachable,  # a proxy in front of the broker: it is down or restarting
    503: BrokerUnreachable,
    504: BrokerUnreachable,
}
