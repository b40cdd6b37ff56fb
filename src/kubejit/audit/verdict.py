"""One verdict on the stored audit log, from the chain check and the checkpoint check (pure).

Both checks can find something; the verdict names the earliest bad seq, because everything after
the first bad event is suspect anyway and the reader wants to know where to start looking.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubejit.audit.chain import BROKEN_LINK, EDITED, SEQ_GAP, VerifyResult
from kubejit.audit.checkpoint import CheckpointProblem


@dataclass(frozen=True)
class Verdict:
    ok: bool
    #: Events read, checkpoints compared.
    checked: int
    checkpoints: int
    #: The last event found good and its hash: worth copying somewhere the database cannot reach.
    last_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    message: str = ""
    #: Something that weakens the verdict without being a finding (no key to check signatures).
    warning: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "checkpoints": self.checkpoints,
            "last_seq": self.last_seq,
            "head_hash": self.head_hash,
            "first_bad_seq": self.first_bad_seq,
            "message": self.message,
            "warning": self.warning,
        }


def chain_message(result: VerifyResult) -> str:
    bad, last = result.first_bad_seq, result.last_seq
    if result.problem == EDITED:
        return f"event {bad} was edited: its stored hash does not match its content"
    if result.problem == SEQ_GAP:
        if bad is not None and bad == last + 2:
            return f"event {last + 1} is missing (deleted): seq {last} is followed by {bad}"
        if bad is not None and bad > last + 2:
            return f"events {last + 1}..{bad - 1} are missing (deleted): seq {last} is followed by {bad}"
        return f"event {bad} is out of order after seq {last}: rows were reordered or duplicated"
    if result.problem == BROKEN_LINK:
        return (
            f"event {bad} does not link to event {last} (prev_hash differs): "
            "an event before it was removed, replaced or reordered"
        )
    return "the chain is intact"


def judge(
    chain: VerifyResult, checkpoint_problem: CheckpointProblem | None, *, checkpoints: int, warning: str = ""
) -> Verdict:
    findings: list[tuple[int, str]] = []
    if not chain.ok and chain.first_bad_seq is not None:
        findings.append((chain.first_bad_seq, chain_message(chain)))
    if checkpoint_problem is not None:
        findings.append((checkpoint_problem.seq, checkpoint_problem.message))
    base = Verdict(True, chain.checked, checkpoints, chain.last_seq, chain.head_hash, warning=warning)
    if not findings:
        return base
    seq, message = min(findings, key=lambda f: f[0])  # stable: the chain's finding wins a tie
    return Verdict(False, chain.checked, checkpoints, chain.last_seq, chain.head_hash, seq, message, warning)
