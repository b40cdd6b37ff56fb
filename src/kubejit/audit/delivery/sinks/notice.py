"""A notification channel as an audit sink: the audit log is the outbox, the cursor the progress.

The worker hands it batches in seq order under the channel's lease; events that do not notify (or
that the channel's ``events`` filter leaves out) just let the cursor move on. A send that fails
raises ``SinkUnavailable`` so the batch is retried with backoff; notices already sent in that batch
are remembered (by event id, in this process) so a retry does not repeat them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence

from kubejit.audit.event import StoredEvent
from kubejit.errors import SinkUnavailable
from kubejit.notify.events import notice_for
from kubejit.notify.message import Notice, NoticeKind

#: How many sent event ids are remembered to skip on a retry.
REMEMBERED = 4096


class NoticeSink:
    def __init__(
        self,
        name: str,
        *,
        send: Callable[[Notice, StoredEvent], None],
        public_url: str,
        kinds: Collection[NoticeKind] | None = None,
    ) -> None:
        self.name = name
        self._send = send
        self._public_url = public_url
        self._kinds = frozenset(kinds) if kinds is not None else None
        self._sent: OrderedDict[str, None] = OrderedDict()

    def notice(self, event: StoredEvent) -> Notice | None:
        """The Notice this channel sends for ``event``, or None."""
        notice = notice_for(
            action=event.action,
            grant_id=event.grant_id,
            subject=event.subject,
            cluster=event.cluster,
            details=event.details,
            public_url=self._public_url,
        )
        if notice is None or (self._kinds is not None and notice.kind not in self._kinds):
            return None
        return notice

    def deliver(self, events: Sequence[StoredEvent]) -> None:
        for event in events:
            notice = self.notice(event)
            if notice is None or event.event_id in self._sent:
                continue
            try:
                self._send(notice, event)
            except SinkUnavailable:
                raise
            except Exception as e:  # a channel's transport error of any kind means "send again"
                raise SinkUnavailable(
                    f"notification channel {self.name}: {type(e).__name__}",
                    hint="Is the receiver up? The notice is sent again with backoff.",
                ) from e
            self._sent[event.event_id] = None
            if len(self._sent) > REMEMBERED:
                self._sent.popitem(last=False)

    def close(self) -> None:
        return None
