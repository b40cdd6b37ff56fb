"""JSON lines in a local file, fsynced per batch and rotated by size (``path``, ``path.1`` … ``path.N``).

A batch is written whole to one file (rotation happens before it, never inside), and the write is
acknowledged only after ``fsync``: once the cursor moves, the lines survive a power cut. The file
is created 0600: audit records name people and reasons.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from kubejit.audit.delivery.payload import PayloadFormat, event_json
from kubejit.audit.event import StoredEvent
from kubejit.errors import SinkUnavailable


class JsonLinesFileSink:
    def __init__(
        self, name: str, *, path: Path, max_bytes: int, keep: int, fmt: PayloadFormat = "ocsf"
    ) -> None:
        self.name = name
        self.fmt: PayloadFormat = fmt
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep

    def deliver(self, events: Sequence[StoredEvent]) -> None:
        data = "".join(event_json(e, self.fmt) + "\n" for e in events).encode("ascii")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._rotate_for(len(data))
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise SinkUnavailable(
                f"audit sink {self.name}: cannot write {self.path}: {e.strerror or e}",
                hint="Check the disk space and that the broker's user may write there.",
            ) from e

    def _rotate_for(self, incoming: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0 or size + incoming <= self.max_bytes:
            return
        if self.keep == 0:
            self.path.unlink()
            return
        for index in range(self.keep - 1, 0, -1):
            older = self._rotated(index)
            if older.exists():
                os.replace(older, self._rotated(index + 1))
        os.replace(self.path, self._rotated(1))

    def _rotated(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")

    def close(self) -> None:
        pass
