"""Notice when files change by polling their content hash, not by inotify.

A Kubernetes ConfigMap or Secret volume updates by swapping the ``..data`` symlink, never by writing
the file that is mounted: an inotify watch on that file sees nothing. Hashing the content through the
path finds every kind of update (in place, rename, symlink swap) at the cost of reading a few small
files every interval.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path


def read_all(paths: Sequence[Path]) -> tuple[bytes, ...]:
    """Each file's bytes, in order; raises ``OSError`` if one cannot be read."""
    return tuple(path.read_bytes() for path in paths)


def digest(contents: Sequence[bytes]) -> str:
    """One file's SHA-256 (what ``sha256sum`` prints); for several, the SHA-256 of their digests."""
    if len(contents) == 1:
        return hashlib.sha256(contents[0]).hexdigest()
    return hashlib.sha256(b"".join(hashlib.sha256(c).digest() for c in contents)).hexdigest()


class ContentWatch:
    """Tells, each time it is asked, whether the files' contents differ from the last look.

    An unreadable file (mid-rotation, deleted) is not a change: the watch keeps the last digest and
    looks again next time. The digest of a refused version is remembered too, so a bad file is
    reported once, not on every poll.
    """

    def __init__(self, paths: Sequence[Path], *, current: str) -> None:
        self.paths = tuple(paths)
        self._seen = current

    def changed(self) -> tuple[str, tuple[bytes, ...]] | None:
        """The new digest and contents when they changed since the last call, else None."""
        try:
            contents = read_all(self.paths)
        except OSError:
            return None
        now = digest(contents)
        if now == self._seen:
            return None
        self._seen = now
        return now, contents
