"""The broker's answers as the client side receives them, and the one problem+json → error map.

Both clients read these, both on urllib: the CLI (``kubejit.cli.client``) and the exec plugin
(``kubejit.exec.broker``). The TypedDicts mirror ``kubejit.server.schemas`` (``GrantOut``,
``TokenOut``) as JSON: times are RFC 3339 strings. Standard library only.
"""

from __future__ import annotations

from kubejit import errors

TYPE_CHECKING = False
if TYPE_CHECKING:  # types only: building TypedDicts at import costs ~5 ms (a compile() per field)
    from typing import TypedDict

    class ApprovalWire(TypedDict):
        approver: str
        at: str
        comment: str

    class GrantWire(TypedDict, total=False):
        """``GET /v1/grants/{id}`` (``GrantOut``); total=False: a newer broker may add, an older omit."""

        id: str
        requester: str
        cluster: str
        namespaces: list[str]
        role: str
        state: str
        rule: str
        reason: str
        ticket: str | None
        duration_seconds: int
        created_at: str
        pending_until: str
        activated_at: str | None
        expires_at: str | None
        ended_at: str | None
        ended_by: str | None
        end_reason: str
        approvals_required: int
        approver_groups: list[str]
        approvals: list[ApprovalWire]
        break_glass: bool
        extendable: bool

    class TokenWire(TypedDict, total=False):
        """``POST /v1/grants/{id}/token`` (``TokenOut``): the token, and the grant's state and end, so the
        exec plugin needs no second request to know how long to keep it."""

        grant_id: str
        token: str
        expiration_timestamp: str
        token_id: str
        state: str
        expires_at: str | None


def problem_error(status: int, body: object, *, fallback: str | None = None) -> errors.KubejitError:
    """A problem+json answer (RFC 9457, ``kubejit.server.problems``) as the KubejitError it came from:
    the class by the problem's ``code`` (``errors.error_class``), the broker's detail and hint kept."""
    problem = body if isinstance(body, dict) else {}
    detail = str(problem.get("detail") or fallback or f"HTTP {status}")
    hint = problem.get("hint")
    hint = str(hint) if hint else None
    cls = errors.error_class(problem.get("code"), status)
    if cls is errors.RequestDenied:
        return errors.RequestDenied(detail, rule=str(problem.get("rule") or ""), hint=hint)
    return cls(detail, hint=hint)
