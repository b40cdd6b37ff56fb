"""A refused or failed read is worded for the person scanning, never for the broker."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from kubejit.clusters.scan.fetch import fetch_snapshot, load_config, scan_error
from kubejit.errors import ClusterError, ClusterForbidden, ClusterUnavailable


def test_forbidden_says_which_list_and_how_to_get_the_right_to_read() -> None:
    error = scan_error(403, 'clusterroles is forbidden: User "bob" cannot list', context="prod", what="roles")
    assert isinstance(error, ClusterForbidden)
    assert str(error).startswith("context 'prod' may not list roles: clusterroles is forbidden")
    assert error.hint is not None and "docs/scan.md" in error.hint and "broker" not in error.hint


@pytest.mark.parametrize(
    ("code", "kind", "fragment"),
    [
        (401, ClusterError, "did not accept its credentials"),
        (429, ClusterUnavailable, "could not list secrets now (429)"),
        (503, ClusterUnavailable, "could not list secrets now (503)"),
        (404, ClusterError, "answered 404 to list secrets"),
    ],
)
def test_other_answers(code: int, kind: type[ClusterError], fragment: str) -> None:
    error = scan_error(code, "", context="prod", what="secrets")
    assert type(error) is kind and fragment in str(error) and str(error).endswith("no message")
    assert "broker" not in str(error) + str(error.hint)


def test_a_long_message_is_cut() -> None:
    assert len(str(scan_error(500, "x" * 10_000, context="prod", what="roles"))) < 600


class _WebPage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>a dashboard, not an API server</html>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def test_a_server_that_is_not_kubernetes_is_a_clear_cluster_error(tmp_path: Path) -> None:
    """A kubeconfig pointing at a web page (a typo'd address) is an error a person can act on."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _WebPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "web", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "web",
        }
        (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
        with pytest.raises(ClusterError) as raised:
            fetch_snapshot(load_config(str(tmp_path / "kubeconfig")))
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert "is not JSON from a Kubernetes API server" in str(raised.value)
    assert raised.value.hint is not None and "server address" in raised.value.hint
