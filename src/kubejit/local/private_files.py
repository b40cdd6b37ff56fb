"""The one way the client side writes a secret to disk and takes turns on a file.

Session, refresh tokens, token cache entries and kubeconfigs all hold bearer credentials: each is
written 0600 from its first byte and replaced atomically (a reader sees the old file or the new one,
never half of one), and concurrent writers (parallel kubectl calls, two ``kubejit kubeconfig`` runs)
serialise on an ``flock``. Imports only ``os`` and ``time``: the exec plugin's hot path loads it.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # `typing` costs start-up time on the exec plugin's path
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

#: A folder created to hold a private file is private too.
FOLDER_MODE = 0o700


def write_private(path: str | os.PathLike[str], text: str, *, durable: bool = False) -> None:
    """Replace ``path`` with ``text``: mode 0600, write-then-rename, missing folders created 0700.

    The temporary file is per process, so concurrent writers never collide; ``durable`` also fsyncs
    before the rename (a kubeconfig must survive a crash; a cache entry can be fetched again).
    """
    target = os.fspath(path)
    tmp = f"{target}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(target) or ".", mode=FOLDER_MODE, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a leftover temporary file keeps its old mode through O_CREAT
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:  # noqa: SIM105 - contextlib costs start-up time
            os.unlink(tmp)
        except OSError:
            pass
        raise


def private_dir(path: str) -> None:
    """Create ``path`` (and its parents) 0700, and take back group/other access if it has any."""
    os.makedirs(path, mode=FOLDER_MODE, exist_ok=True)
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, FOLDER_MODE)


class FileLock:
    """An exclusive ``flock`` on ``path`` (created 0600), held inside ``with``; closing releases it.

    ``wait_seconds=None`` waits as long as it takes; otherwise ``on_timeout(path)`` is called (and must
    raise) once the lock was busy that long, so a stuck holder is reported instead of hanging kubectl.
    """

    def __init__(
        self,
        path: str,
        *,
        wait_seconds: float | None = None,
        on_timeout: Callable[[str], NoReturn] | None = None,
    ) -> None:
        self.path = path
        self.wait_seconds = wait_seconds
        self.on_timeout = on_timeout
        self.fd = -1

    def __enter__(self) -> None:
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        if self.wait_seconds is None:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            return
        deadline = time.monotonic() + self.wait_seconds
        pause = 0.002
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    self.fd = -1
                    if self.on_timeout is not None:
                        self.on_timeout(self.path)
                    raise TimeoutError(f"{self.path} stayed locked for {self.wait_seconds}s") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.05)

    def __exit__(self, *_: object) -> None:
        os.close(self.fd)
        self.fd = -1
