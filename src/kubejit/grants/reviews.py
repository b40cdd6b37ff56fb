"""Post-incident review of break-glass grants, as pure rules: who may review, and what a review is.

Break-glass access is approved by nobody beforehand, so somebody must look at it afterwards: each
break-glass grant is flagged when it activates, and stays flagged until an admin or a member of one
of its rule's ``reviewers`` groups records a review with a comment. Never its own holder, under any
login: a review by the person who used the access would be no review. A grant is reviewed once; a
second review is refused (409) naming the first, so two reviewers racing cannot both "close" it.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime

from kubejit.errors import InvalidInput, InvalidTransition, ReviewRefused
from kubejit.grants.model import Grant, Review
from kubejit.identity.principal import Principal
from kubejit.ids import PrincipalName

#: The longest review comment (the same bound as reasons and approval comments).
MAX_COMMENT = 1000
#: C0, DEL, C1 and the bidirectional controls (as the API refuses them in every free text).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def check_comment(comment: str) -> str:
    """The comment as stored (outer spaces removed); refuses a blank, an overlong or a multi-line one."""
    if bad := _UNSAFE.search(comment):
        raise InvalidInput(
            f"the review comment must be one line of printable text; control character "
            f"U+{ord(bad.group()):04X} is not allowed",
            hint='Write what was checked on one line, e.g. --comment "checked the audit trail: ok".',
        )
    # Only spaces are blank (as the API's schema says); other characters are kept as written.
    text = comment.strip(" ")
    if not text:
        raise InvalidInput(
            "a review needs a comment: what was checked, and what was found",
            hint='e.g. --comment "INC-42 rollback; kubectl audit matches the incident".',
        )
    if len(text) > MAX_COMMENT:
        raise InvalidInput(
            f"the review comment is {len(text)} characters; at most {MAX_COMMENT} are kept",
            hint="Link the incident write-up instead of pasting it.",
        )
    return text


def may_review(grant: Grant, reviewer: Principal, *, is_admin: bool) -> bool:
    """Whether ``reviewer`` may record ``grant``'s review (the listing's filter and the rule alike)."""
    if reviewer.same_person(grant.requester, grant.requester_person):
        return False
    return is_admin or bool(reviewer.groups & grant.reviewer_groups)


def check_reviewer(grant: Grant, reviewer: Principal, *, is_admin: bool) -> None:
    """Raise ``ReviewRefused`` unless ``reviewer`` may review ``grant``."""
    groups = ", ".join(sorted(grant.reviewer_groups)) or "(none named: admins only)"
    if reviewer.same_person(grant.requester, grant.requester_person):
        also = "" if reviewer.name == grant.requester else f" (held as {grant.requester}, the same person)"
        raise ReviewRefused(
            f"you cannot review your own break-glass grant {grant.id}{also}",
            hint=f"An admin or a member of {groups} records its review.",
        )
    if not may_review(grant, reviewer, is_admin=is_admin):
        raise ReviewRefused(
            f"{reviewer.name} is not a reviewer of break-glass grant {grant.id} (rule '{grant.rule}')",
            hint=f"Reviewers are admins and members of: {groups}.",
        )


def record_review(grant: Grant, *, reviewer: Principal, is_admin: bool, comment: str, now: datetime) -> Grant:
    """The grant with its review recorded and its flag cleared; refuses what needs no review."""
    text = check_comment(comment)
    if not grant.break_glass:
        raise InvalidTransition(
            f"grant {grant.id} is not break-glass access; only break-glass grants are reviewed",
            hint="See open reviews with `kubejit reviews`.",
        )
    check_reviewer(grant, reviewer, is_admin=is_admin)
    if grant.review is not None:
        raise InvalidTransition(
            f"grant {grant.id} was already reviewed by {grant.review.reviewer} "
            f"at {grant.review.at:%Y-%m-%d %H:%M}Z",
            hint=f"A grant is reviewed once; `kubejit audit search --grant {grant.id} --action grant.reviewed` "
            "shows the review.",
        )
    if not grant.needs_review:
        raise InvalidTransition(
            f"grant {grant.id} needs no review: it never became active",
            hint="See open reviews with `kubejit reviews`.",
        )
    review = Review(PrincipalName(reviewer.name), now, text, person=reviewer.person)
    return replace(grant, needs_review=False, review=review)
