"""GrantService: the one place that sequences store → cluster → audit for every grant operation.

Order matters for crash safety. A grant is saved as ended *before* its cluster objects are deleted,
and saved as active only *after* they exist; whatever a crash interrupts, the reconciler finishes
from the store's word. Every rule it applies comes from ``policy.evaluate`` or ``grants.lifecycle``.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from typing import Any, Literal

from kubejit import logcontext
from kubejit.clock import Clock
from kubejit.errors import (
    ClusterError,
    ClusterUnavailable,
    Conflict,
    InvalidInput,
    InvalidTransition,
    KubejitError,
    NotFound,
    PermissionDenied,
    RequestDenied,
)
from kubejit.grants import lifecycle, reviews
from kubejit.grants.model import LIVE_STATES, SYSTEM_ACTOR, Grant, GrantState
from kubejit.grants.offboarding import Lockouts, new_lock_id
from kubejit.grants.ports import AuditEvent, AuditLog, ClusterAdapter, GrantStore, LockStore, MintedToken
from kubejit.grants.reachability import ClusterReachability
from kubejit.grants.reconciler import Action, ActionKind, diff
from kubejit.grants.token_facts import service_account_uid
from kubejit.identity.principal import Principal
from kubejit.identity.workload import audit_claims
from kubejit.ids import ClusterName, GrantId, PrincipalName
from kubejit.policy.evaluate import evaluate
from kubejit.policy.model import AccessRequest, Decision, Outcome, Policy
from kubejit.policy.workloads import WorkloadTarget, evaluate_workload

log = logging.getLogger(__name__)

#: TokenRequest tokens live at least this long (the API server's minimum); deleting the
#: ServiceAccount at the grant's end is what really ends them.
MIN_TOKEN_SECONDS = 600
#: A stolen or leaked cluster token is good for at most this long, however long its grant runs: the
#: exec plugin refreshes before it expires (its ``expirationTimestamp``), so users never notice.
MAX_TOKEN_SECONDS = 3600
#: Grants ended side by side in one sweeper tick (each waits on its cluster's round trips).
EXPIRY_WORKERS = 8


#: Whose grants ``list_for`` lists (``GET /v1/grants?scope=``).
GrantScope = Literal["mine", "pending-for-me", "all"]


def new_grant_id() -> GrantId:
    # Short, URL- and DNS-safe: it becomes part of ServiceAccount and RoleBinding names.
    return GrantId("g" + secrets.token_hex(6))


class GrantService:
    def __init__(
        self,
        *,
        store: GrantStore,
        audit: AuditLog,
        clusters: Mapping[str, ClusterAdapter],
        policy: Policy,
        clock: Clock,
        id_factory: Callable[[], GrantId] = new_grant_id,
        activation_gate: Callable[[Grant], None] | None = None,
        locks: LockStore | None = None,
        lock_id_factory: Callable[[], str] = new_lock_id,
        max_open_grants: int | None = None,
        max_token_seconds: int = MAX_TOKEN_SECONDS,
    ) -> None:
        self.store = store
        #: Events that change no grant (refusals, token mints, cleanup): the grant changes' go with them.
        self.audit = audit
        self.clusters = clusters
        self.policy = policy
        self.clock = clock
        self._new_id = id_factory
        #: Fail-closed audit: raises (AuditUnavailable) to refuse an activation before anything is created.
        self._activation_gate = activation_gate
        #: Pending + approved + active grants one person may hold (None: no cap).
        self.max_open_grants = max_open_grants
        self.max_token_seconds = max(MIN_TOKEN_SECONDS, max_token_seconds)
        #: What the reconciler last saw of each cluster (for logs and /metrics).
        self.reachability = ClusterReachability()
        #: Locks and offboarding (grants/offboarding.py): they end grants by this service's steps.
        self.lockouts = Lockouts(self, locks, id_factory=lock_id_factory)

    # -- helpers -------------------------------------------------------------------------------
    def _cluster(self, name: str) -> ClusterAdapter:
        try:
            return self.clusters[name]
        except KeyError:
            known = ", ".join(sorted(self.clusters)) or "none"
            raise NotFound(
                f"unknown cluster '{name}' (known: {known})", hint="List clusters with `kubejit clusters`."
            ) from None

    def _event(self, action: str, actor: str, grant: Grant | None = None, **details: Any) -> AuditEvent:
        if grant is not None:
            details = {
                "namespaces": list(grant.namespaces),
                "role": grant.role.name,
                "state": str(grant.state),
                "rule": grant.rule,
                "reason": grant.reason,
                "ticket": grant.ticket,
                "break_glass": grant.break_glass,
                "approvers": [a.approver for a in grant.approvals],
                "expires_at": grant.expires_at,
                **details,
            }
        return AuditEvent(
            action=action,
            actor=actor,
            at=self.clock.now(),
            grant_id=grant.id if grant else None,
            subject=grant.requester if grant else None,
            cluster=grant.cluster if grant else None,
            details=details,
        )

    def is_admin(self, principal: Principal) -> bool:
        return bool(principal.groups & self.policy.admin_groups)

    def check_not_locked(self, principal: Principal) -> None:
        """Raise ``Locked`` if a lock in force matches the caller: every route asks, so it is cached."""
        self.lockouts.check_not_locked(principal)

    # -- requests and decisions ----------------------------------------------------------------
    def check(self, principal: Principal, request: AccessRequest) -> Decision:
        """A dry run: the decision policy would make, with nothing stored or created."""
        return evaluate(self.policy, principal, request, now=self.clock.now())

    def request(self, principal: Principal, request: AccessRequest) -> Grant:
        self.check_not_locked(principal)
        self._cluster(request.cluster)
        self._check_open_grants(principal)
        decision = evaluate(self.policy, principal, request, now=self.clock.now())
        decided = self._decision_event(principal, request, decision)
        if not decision.allowed:
            self.audit.record(
                [
                    decided,
                    AuditEvent(
                        action="grant.request_denied",
                        actor=principal.name,
                        at=self.clock.now(),
                        outcome="denied",
                        subject=principal.name,
                        cluster=request.cluster,
                        details={
                            "namespaces": list(request.namespaces),
                            "role": request.role,
                            "rule": decision.rule,
                            "message": decision.message,
                            "reason": request.reason,
                        },
                    ),
                ]
            )
            raise RequestDenied(
                decision.message, rule=decision.rule, hint="See why with `kubejit policy check`."
            )
        grant = lifecycle.new_grant(
            self._new_id(), principal=principal, request=request, decision=decision, now=self.clock.now()
        )
        decided = replace(decided, grant_id=grant.id)
        events = [
            decided,
            self._event(
                "grant.requested", principal.name, grant, decision=str(decision.outcome), **_person(principal)
            ),
        ]
        if grant.break_glass:
            events.append(
                self._event(
                    "grant.break_glass", principal.name, grant, review_required=True, **_reviewers(grant)
                )
            )
        grant = self.lockouts.unless_locked(principal, self.store.add(grant, events))
        if grant.state is GrantState.APPROVED:
            grant = self._activate(grant)
        return grant

    def _check_open_grants(self, principal: Principal) -> None:
        """The per-person cap, before policy is asked (so before any write)."""
        cap = self.max_open_grants
        if cap is None:
            return
        held = self.store.list(
            requester=PrincipalName(principal.name), states=lifecycle.OPEN_STATES, limit=cap
        )
        lifecycle.check_open_grants(principal.name, len(held), cap=cap)

    def request_workload(self, principal: Principal, target: WorkloadTarget) -> Grant:
        """A CI/CD job's grant: decided by the policy's workload rules, auto-approved, active at once.

        The decision is recorded like people's (``policy.decided``), with the job's identifying
        claims; refusals are audited and create nothing.
        """
        self.check_not_locked(principal)
        verdict = evaluate_workload(self.policy, principal, target, now=self.clock.now())
        decision, request = verdict.decision, verdict.request
        cluster = request.cluster if request else target.cluster
        details = {
            "namespaces": list(request.namespaces if request else target.namespaces),
            "role": request.role if request else target.role,
            "rule": decision.rule,
            "message": decision.message,
            "claims": audit_claims(principal),
        }
        if verdict.near_miss:
            details["near_miss"] = verdict.near_miss
        decided = AuditEvent(
            action="policy.decided",
            actor=SYSTEM_ACTOR,
            at=self.clock.now(),
            outcome=str(decision.outcome),
            subject=principal.name,
            cluster=cluster,
            details={**details, "workload": True},
        )
        if not decision.allowed or request is None:
            denied = AuditEvent(
                action="grant.request_denied",
                actor=principal.name,
                at=self.clock.now(),
                outcome="denied",
                subject=principal.name,
                cluster=cluster,
                details=details,
            )
            self.audit.record([decided, denied])
            raise RequestDenied(
                decision.message,
                rule=decision.rule,
                hint="Workload access comes from the policy's workloads:.",
            )
        self._cluster(request.cluster)
        grant = lifecycle.new_grant(
            self._new_id(), principal=principal, request=request, decision=decision, now=self.clock.now()
        )
        requested = self._event(
            "grant.requested", principal.name, grant, decision="auto", claims=audit_claims(principal)
        )
        added = self.store.add(grant, [replace(decided, grant_id=grant.id), requested])
        return self._activate(self.lockouts.unless_locked(principal, added))

    def _decision_event(self, principal: Principal, request: AccessRequest, decision: Decision) -> AuditEvent:
        """The policy's decision on a request, recorded whether it allowed or refused."""
        return AuditEvent(
            action="policy.decided",
            actor=SYSTEM_ACTOR,
            at=self.clock.now(),
            outcome=str(decision.outcome),
            subject=principal.name,
            cluster=request.cluster,
            details={
                "namespaces": list(request.namespaces),
                "role": request.role,
                "rule": decision.rule,
                "message": decision.message,
                "reason": request.reason,
                "ticket": request.ticket,
                "break_glass": request.break_glass,
                "groups": sorted(principal.groups),
            },
        )

    def approve(self, principal: Principal, grant_id: GrantId, *, comment: str = "") -> Grant:
        grant = self.store.get(grant_id)
        approved = lifecycle.approve(grant, approver=principal, comment=comment, now=self.clock.now())
        action = "grant.approved" if approved.state is GrantState.APPROVED else "grant.approval_recorded"
        event = self._event(action, principal.name, approved, comment=comment, **_person(principal))
        grant = self.store.save(approved, [event])
        if grant.state is GrantState.APPROVED:
            grant = self._activate(grant)
        return grant

    def deny(self, principal: Principal, grant_id: GrantId, *, reason: str) -> Grant:
        grant = self.store.get(grant_id)
        ended = lifecycle.deny(grant, approver=principal, reason=reason, now=self.clock.now())
        return self._finish(grant, ended, self._event("grant.denied", principal.name, ended, why=reason))

    def revoke(self, principal: Principal, grant_id: GrantId, *, reason: str = "") -> Grant:
        grant = self.store.get(grant_id)
        ended = lifecycle.revoke(
            grant, actor=principal, is_admin=self.is_admin(principal), reason=reason, now=self.clock.now()
        )
        return self._finish(grant, ended, self._event("grant.revoked", principal.name, ended, why=reason))

    def extend(self, principal: Principal, grant_id: GrantId, *, by: timedelta) -> Grant:
        grant = self.store.get(grant_id)
        mine = principal.name == grant.requester and grant.state is GrantState.ACTIVE
        current = self._decision_now(principal, grant, action="extend") if mine else None
        longer = lifecycle.extend(grant, actor=principal, by=by, now=self.clock.now(), current=current)
        return self.store.save(
            longer,
            [self._event("grant.extended", principal.name, longer, by_seconds=int(by.total_seconds()))],
        )

    # -- break-glass reviews -------------------------------------------------------------------
    def reviews_for(self, principal: Principal, *, limit: int = 1000) -> list[Grant]:
        """Break-glass grants still needing review that this person may review, newest first; an
        admin sees every open one (their own too, which ``review`` still refuses them)."""
        if self.is_admin(principal):
            return self.store.needing_review(limit=limit)
        if not principal.groups:
            return []
        return self.store.needing_review(
            groups=principal.groups,
            excluding=PrincipalName(principal.name),
            excluding_person=principal.person,
            limit=limit,
        )

    def review(self, principal: Principal, grant_id: GrantId, *, comment: str) -> Grant:
        """Record the post-incident review of a break-glass grant (``grants.reviews`` has the rules).

        Whoever may not even see the grant is told it does not exist, as by ``get_visible``.
        """
        reviews.check_comment(comment)
        grant = self.get_visible(principal, grant_id)
        reviewed = reviews.record_review(
            grant,
            reviewer=principal,
            is_admin=self.is_admin(principal),
            comment=comment,
            now=self.clock.now(),
        )
        assert reviewed.review is not None
        event = self._event(
            "grant.reviewed",
            principal.name,
            reviewed,
            reviewer=principal.name,
            comment=reviewed.review.comment,
            **_reviewers(reviewed),
            **_person(principal),
        )
        return self.store.save(reviewed, [event])

    # -- the cluster side ----------------------------------------------------------------------
    def _activate(self, grant: Grant) -> Grant:
        """Create the grant's objects, then mark it active; a permanent failure leaves nothing behind."""
        adapter = self._cluster(grant.cluster)
        self.lockouts.end_if_locked(grant)
        if lifecycle.activation_is_stale(grant, now=self.clock.now()):
            return self._expire_stale(grant)
        if self._activation_gate is not None:
            self._activation_gate(grant)
        try:
            adapter.ensure_grant_objects(grant)
        except ClusterUnavailable:
            log.warning(
                "cluster %s unavailable; grant %s stays approved for the reconciler", grant.cluster, grant.id
            )
            raise
        except ClusterError as exc:
            return self._fail(grant, adapter, exc)
        active = lifecycle.activate(grant, now=self.clock.now())
        try:
            return self.store.save(
                active, [self._event("grant.activated", SYSTEM_ACTOR, active, **_reviewers(active))]
            )
        except Conflict:
            return self._activation_overtaken(grant, adapter)

    def _activation_overtaken(self, grant: Grant, adapter: ClusterAdapter) -> Grant:
        """Another replica changed the grant while this one created its objects: its change stands.

        Activated there (a reconciler finishing what it took for an interrupted activation): the
        objects are the same ones, create-or-get, and the one ``grant.activated`` is its. Ended there
        (revoked, expired): its cleanup may have run before these objects existed, so they go again.
        """
        current = self.store.get(grant.id)
        if current.state not in LIVE_STATES:
            log.info("grant %s ended while this replica activated it; removing its objects", grant.id)
            self._cleanup(current, adapter)
        return current

    def _fail(self, grant: Grant, adapter: ClusterAdapter, exc: KubejitError) -> Grant:
        failed = lifecycle.fail(grant, reason=exc.message, now=self.clock.now())
        saved = self.store.save(
            failed, [self._event("grant.failed", SYSTEM_ACTOR, failed, error=exc.message)]
        )
        self._cleanup(saved, adapter)
        raise exc

    def _finish(self, before: Grant, ended: Grant, event: AuditEvent) -> Grant:
        saved = self.store.save(ended, [event])
        if before.state in LIVE_STATES:
            self._cleanup(saved, self._cluster(saved.cluster))
        return saved

    def _cleanup(self, grant: Grant, adapter: ClusterAdapter) -> bool:
        """Delete the ended grant's objects; False when that is left to the reconciler."""
        try:
            adapter.delete_grant_objects(grant.id)
        except ClusterError as exc:
            # The grant has ended in the store; the reconciler deletes what is left.
            log.warning("cleanup of grant %s deferred to the reconciler: %s", grant.id, exc.message)
            self.audit.record([self._event("grant.cleanup_deferred", SYSTEM_ACTOR, grant, error=exc.message)])
            return False
        self.audit.record([self._event("grant.cleaned_up", SYSTEM_ACTOR, grant)])
        return True

    def issue_token(self, principal: Principal, grant_id: GrantId) -> MintedToken:
        """Mint a TokenRequest token for an active grant; only its hash and id are kept."""
        grant, issued = self.store.get_with_tokens(grant_id)
        if principal.name != grant.requester:
            raise PermissionDenied(f"grant {grant.id} belongs to {grant.requester}, not {principal.name}")
        now = self.clock.now()
        if grant.state is not GrantState.ACTIVE or (grant.expires_at and grant.expires_at <= now):
            raise InvalidTransition(
                f"grant {grant.id} is {grant.state}; no token can be issued",
                hint=f"Request access again with `kubejit request --cluster {grant.cluster} ...`.",
            )
        self.lockouts.refuse_locked_grant(grant)
        self._decision_now(principal, grant, action="mint a token for")
        left = int(grant.time_left(now).total_seconds())
        seconds = max(MIN_TOKEN_SECONDS, min(self.max_token_seconds, left))
        minted = self._cluster(grant.cluster).mint_token(grant, expiration_seconds=seconds)
        digest = hashlib.sha256(minted.token.encode()).hexdigest()
        # A second token for the same grant is kubectl's exec plugin refreshing it.
        action = "token.refreshed" if issued else "token.minted"
        event = self._event(
            action,
            principal.name,
            grant,
            token_id=minted.token_id,
            service_account_uid=service_account_uid(minted.token),
            token_expires_at=minted.expires_at,
        )
        self.store.record_token(
            grant.id,
            token_id=minted.token_id,
            token_sha256=digest,
            expires_at=minted.expires_at,
            events=[event],
        )
        return minted

    def _decision_now(self, principal: Principal, grant: Grant, *, action: str) -> Decision:
        """Policy's decision on the grant's access for the caller as they are now; a refusal is audited."""
        now = self.clock.now()
        try:
            if principal.claims:  # a CI/CD job: the workload rules decide, as at its request
                target = WorkloadTarget(
                    cluster=grant.cluster, namespaces=tuple(grant.namespaces), role=grant.role.name
                )
                decision = evaluate_workload(self.policy, principal, target, now=now).decision
            else:
                request = AccessRequest(
                    cluster=grant.cluster,
                    namespaces=tuple(grant.namespaces),
                    role=grant.role.name,
                    reason=grant.reason,
                    ticket=grant.ticket,
                    break_glass=grant.break_glass,
                )
                decision = evaluate(self.policy, principal, request, now=now)
        except InvalidInput as exc:  # the policy now refuses the shape of the request itself
            decision = Decision(Outcome.DENY, "default-deny", exc.message)
        try:
            lifecycle.check_still_allowed(grant, decision, action=action)
        except RequestDenied:
            details = {"for": action, "rule": decision.rule, "message": decision.message}
            self.audit.record(
                [
                    replace(
                        self._event("grant.no_longer_allowed", principal.name, grant, **details),
                        outcome="denied",
                    )
                ]
            )
            raise
        return decision

    # -- workers -------------------------------------------------------------------------------
    def expire_due(self) -> list[Grant]:
        """One sweeper tick: end what is due (an index range scan, whatever the number of grants).

        Due grants end side by side: a burst of grants due together (a batch requested at once) must
        not wait for each other's cluster round trips, or the last one overstays its end time.
        """
        due = self.store.due_for_expiry(self.clock.now())
        if len(due) <= 1:
            return [g for g in map(self._expire, due) if g is not None]
        with ThreadPoolExecutor(max_workers=min(EXPIRY_WORKERS, len(due))) as pool:
            return [g for g in pool.map(self._expire, due) if g is not None]

    def _expire(self, grant: Grant) -> Grant | None:
        with logcontext.about_grant(grant.id):
            return self._expire_now(grant)

    def _expire_now(self, grant: Grant) -> Grant | None:
        try:
            expired = lifecycle.expire(grant, now=self.clock.now())
            return self._finish(grant, expired, self._event("grant.expired", SYSTEM_ACTOR, expired))
        except KubejitError as exc:  # another replica got there first, or a cluster error
            log.info("expiry of %s skipped this tick: %s", grant.id, exc.message)
            return None

    def reconcile(self, cluster: ClusterName | None = None) -> list[Action]:
        """Make each cluster hold exactly the objects of live grants; returns what it did."""
        done: list[Action] = []
        for name in [cluster] if cluster else sorted(self.clusters):
            adapter = self._cluster(name)
            live = self._drop_stale_approvals(
                self.store.list(states=LIVE_STATES, cluster=ClusterName(name), limit=1_000_000)
            )
            try:
                owned = adapter.list_owned()
            except ClusterError as exc:  # an outage: one WARNING per outage, not a traceback per tick
                self.reachability.unreachable(name, exc.message)
                continue
            self.reachability.reached(name)
            for action in diff(live, owned, service_accounts=adapter.uses_service_accounts):
                try:
                    if self._apply(action, adapter):
                        done.append(action)
                except KubejitError as exc:
                    log.warning("reconcile %s %s failed: %s", action.kind, action.grant_id, exc.message)
        return done

    def _drop_stale_approvals(self, live: list[Grant]) -> list[Grant]:
        """Expire approvals too old to activate (even while their cluster is down); the rest stay."""
        now = self.clock.now()
        kept = []
        for grant in live:
            if not lifecycle.activation_is_stale(grant, now=now):
                kept.append(grant)
                continue
            try:
                self._expire_stale(grant)
            except KubejitError as exc:  # another replica ended or activated it first
                log.info("stale approval %s skipped: %s", grant.id, exc.message)
        return kept

    def _expire_stale(self, grant: Grant) -> Grant:
        expired = lifecycle.expire(grant, now=self.clock.now())
        event = self._event("grant.expired", SYSTEM_ACTOR, expired, why=expired.end_reason)
        return self._finish(grant, expired, event)

    def _apply(self, action: Action, adapter: ClusterAdapter) -> bool:
        with logcontext.about_grant(action.grant_id):
            return self._apply_now(action, adapter)

    def _apply_now(self, action: Action, adapter: ClusterAdapter) -> bool:
        """Carry out one repair, judged again on the store's word now; False when it is not needed.

        ``diff`` compares two reads made one after the other, and another replica (or a request
        on this one) may act between them: a grant activated after the live grants were read looks
        orphaned, one ended before its objects were listed looks incomplete. Neither is repaired.
        """
        if action.kind is ActionKind.DELETE:
            if self._live(action.grant_id) is not None:
                return False  # activated after the live grants were read: not an orphan
            adapter.delete_grant_objects(action.grant_id)
            self.audit.record([self._orphan_event(action, adapter)])
        elif action.kind is ActionKind.RESTORE and action.grant:
            return self._restore(action.grant, adapter)
        elif action.kind is ActionKind.ACTIVATE and action.grant:
            self._activate(action.grant)
        return True

    def _live(self, grant_id: GrantId) -> Grant | None:
        try:
            grant = self.store.get(grant_id)
        except NotFound:
            return None
        return grant if grant.state in LIVE_STATES else None

    def _restore(self, seen: Grant, adapter: ClusterAdapter) -> bool:
        """Recreate an active grant's missing objects, unless it has ended: then they stay gone.

        Checked before (it ended after the live grants were read) and after (it ended while they
        were being made, and its cleanup may have run first): an ended grant never keeps objects.
        """
        grant = self._live(seen.id)
        if grant is None or grant.state is not GrantState.ACTIVE:
            return False
        adapter.ensure_grant_objects(grant)
        if self._live(grant.id) is None:
            log.info("grant %s ended while the reconciler restored it; removing its objects", grant.id)
            adapter.delete_grant_objects(grant.id)
            return False
        self.audit.record([self._event("reconciler.restored", SYSTEM_ACTOR, grant)])
        return True

    def _orphan_event(self, action: Action, adapter: ClusterAdapter) -> AuditEvent:
        return replace(
            self._event("reconciler.deleted_orphans", SYSTEM_ACTOR),
            grant_id=action.grant_id,
            cluster=adapter.name,
        )

    def pending_for(self, principal: Principal, *, limit: int = 1000) -> list[Grant]:
        """Requests waiting for this person's decision (never their own, under any login), newest first.

        The store filters (approver groups, not the requester's own), so the newest ``limit``
        pending grants of other groups cannot hide the ones this person can decide.
        """
        return self.store.pending_for(
            PrincipalName(principal.name), principal.groups, approver_person=principal.person, limit=limit
        )

    def list_grants(
        self, *, requester: str | None = None, states: Sequence[GrantState] | None = None, limit: int = 100
    ) -> list[Grant]:
        return self.store.list(
            requester=PrincipalName(requester) if requester else None,
            states=frozenset(states) if states else None,
            limit=limit,
        )

    def list_for(
        self, principal: Principal, *, scope: GrantScope = "mine", states: Sequence[GrantState] | None = None
    ) -> list[Grant]:
        """``mine`` (the caller's own), ``pending-for-me`` (waiting for their decision; ``states`` is not
        used) or ``all`` (everyone's: admins only), newest first."""
        if scope == "pending-for-me":
            return self.pending_for(principal)
        if scope == "all":
            if not self.is_admin(principal):
                raise PermissionDenied("listing everyone's grants needs an admin group")
            return self.list_grants(states=states, limit=1000)
        return self.list_grants(requester=principal.name, states=states, limit=1000)

    def get_visible(self, principal: Principal, grant_id: GrantId) -> Grant:
        """The grant, if the caller may see it (``lifecycle.visible_to``); to anyone else it is not found,
        so that grant ids are no oracle of who holds access."""
        grant = self.store.get(grant_id)
        if not lifecycle.visible_to(grant, principal, is_admin=self.is_admin(principal)):
            raise NotFound(f"grant {grant_id} not found")
        return grant

    def count_by_state(self) -> dict[str, int]:
        """Grants per state, zeros included (for /metrics)."""
        return self.store.count_by_state()


def _reviewers(grant: Grant) -> dict[str, Any]:
    """A break-glass grant's reviewer groups, in its events (notifications route on them)."""
    return {"reviewers": sorted(grant.reviewer_groups)} if grant.break_glass else {}


def _person(principal: Principal) -> dict[str, str]:
    """The audit detail naming the human behind a login (approvals count people), when known."""
    return {"person": principal.person} if principal.person else {}
