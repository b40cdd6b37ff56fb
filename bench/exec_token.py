"""How long kubectl waits for `kubejit token`, side by side with what it cannot be faster than.

Runs, interleaved round-robin in one process so machine load hits all alike (>= 30 each):

    python -I -c pass         the interpreter's own start (the floor)
    python -c pass            the same with `site` (the venv's .pth files), as any console script runs
    kubectl version --client  kubectl's own start, for scale
    kubejit token (warm)      a cached token: the path every kubectl call takes
    kubejit token (cold)      a cache miss: lock, session, the HTTP call(s) to a local stub broker
    kubejit token (cold OIDC) the same with an OIDC login (its ID token's exp is read, not renewed)

Goal: warm median <= interpreter start + 10 ms. The cold figure is the plugin's own cost; a real
broker adds its TokenRequest round trip to the cluster on top. Each warm run first removes the
"served" marker of the previous run (outside the timing), so every run is a first call from a new
kubectl process, as in real use. Usage: .venv/bin/python bench/exec_token.py [--runs 40] [--grant ID]
(--grant: also against the real broker of your login, e.g. after `kubejit up`, login and request).
"""

from __future__ import annotations

import os
import sys

# This file shares its name with the stdlib's `token` (which `inspect` and `tokenize` import), and
# Python puts the script's folder first on sys.path: take it off before anything else is imported.
_HERE = os.path.realpath(os.path.dirname(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
import base64  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

BIN = Path(sys.executable).parent
GRANT = "gbench0000001"
#: Byte for byte what kubectl v1.37 puts in KUBERNETES_EXEC_INFO for `interactiveMode: Never`.
CLIENT_GO_EXEC_INFO = (
    '{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}\n'
)
FAKE_TOKEN = "bench." + "x" * 900  # the size of a real projected ServiceAccount token


class StubBroker(BaseHTTPRequestHandler):
    """Answers the calls of the refresh path as the real broker would, instantly; counts them."""

    calls = 0

    def do_GET(self) -> None:
        StubBroker.calls += 1
        now = datetime.now(UTC)
        self._send(
            {
                "id": GRANT,
                "state": "active",
                "cluster": "bench",
                "namespaces": ["team-a"],
                "role": "view",
                "expires_at": (now + timedelta(hours=1)).isoformat(),
            }
        )

    def do_POST(self) -> None:
        StubBroker.calls += 1
        expires = datetime.now(UTC) + timedelta(hours=1)
        self._send(
            {
                "grant_id": GRANT,
                "token": FAKE_TOKEN,
                "expiration_timestamp": expires.isoformat(),
                "token_id": "0123456789abcdef",
                "state": "active",
                "expires_at": expires.isoformat(),
            }
        )

    def _send(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        pass


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument(
        "--grant",
        help="also time a cold and a warm call for this active grant of your current kubejit login "
        "(the real broker and cluster: each cold call mints a token)",
    )
    options = parser.parse_args()
    runs = max(30, options.runs)
    home = Path(tempfile.mkdtemp(prefix="kubejit-bench-"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubBroker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    broker = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        env = setup(home, broker)
        times = measure(env, broker, runs)
        if options.grant:
            times.update(measure_real(options.grant, home, runs))
        report(times, runs)
    finally:
        server.shutdown()
        shutil.rmtree(home, ignore_errors=True)


def setup(home: Path, broker: str) -> dict[str, str]:
    skip = ("KUBEJIT", "XDG_", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env.update(
        # An installed kubejit has its .pyc files (pip compiles them); a source checkout run with
        # PYTHONDONTWRITEBYTECODE would compile kubejit on every call. Keep them out of the tree.
        PYTHONPYCACHEPREFIX=str(home / "pycache"),
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
        KUBECONFIG=str(home / "kubeconfig"),
    )
    session = home / "config" / "kubejit" / "session.json"
    session.parent.mkdir(parents=True, mode=0o700)
    session.write_text(json.dumps({"broker": broker, "token": "bench-session", "user": "bench"}))
    session.chmod(0o600)
    oidc = home / "config-oidc" / "kubejit" / "session.json"
    oidc.parent.mkdir(parents=True, mode=0o700)
    payload = base64.urlsafe_b64encode(json.dumps({"sub": "bench", "exp": int(time.time()) + 86400}).encode())
    id_token = "eyJhbGciOiJSUzI1NiJ9." + payload.decode().rstrip("=") + ".c2ln"
    login = {"broker": broker, "token": id_token, "user": "bench", "issuer_url": "https://idp.example"}
    oidc.write_text(json.dumps({**login, "client_id": "kubejit", "token_endpoint": "https://idp.example/t"}))
    oidc.chmod(0o600)
    return env


def measure(env: dict[str, str], broker: str, runs: int) -> dict[str, list[float]]:
    from kubejit.exec.cache import CachePaths

    paths = CachePaths(GRANT, broker, root=str(Path(env["XDG_CACHE_HOME"]) / "kubejit" / "tokens"))
    token = [str(BIN / "kubejit"), "token", "--grant", GRANT, "--broker", broker]
    plugin_env = {**env, "KUBERNETES_EXEC_INFO": CLIENT_GO_EXEC_INFO}
    timed(token, plugin_env)  # warms the cache (and the OS page cache)

    def warm() -> float:
        shutil.rmtree(paths.seen, ignore_errors=True)
        return timed(token, plugin_env)

    def cold(run_env: dict[str, str] = plugin_env, run_paths: CachePaths = paths) -> float:
        for path in (run_paths.entry, run_paths.down):
            Path(path).unlink(missing_ok=True)
        shutil.rmtree(run_paths.seen, ignore_errors=True)
        return timed(token, run_env)

    # Its own config and cache: an entry is served only to the login session that fetched it.
    oidc_home = Path(env["HOME"])
    oidc_env = {
        **plugin_env,
        "XDG_CONFIG_HOME": str(oidc_home / "config-oidc"),
        "XDG_CACHE_HOME": str(oidc_home / "cache-oidc"),
    }
    oidc_paths = CachePaths(GRANT, broker, root=str(oidc_home / "cache-oidc" / "kubejit" / "tokens"))
    StubBroker.calls = 0
    cold()
    print(f"broker calls per cold miss: {StubBroker.calls}")

    cases: dict[str, Callable[[], float]] = {
        "python -I -c pass": lambda: timed([sys.executable, "-I", "-c", "pass"], env),
        "python -c pass (with site)": lambda: timed([sys.executable, "-c", "pass"], env),
        "kubectl version --client": lambda: timed([str(BIN / "kubectl"), "version", "--client"], env),
        "kubejit token (warm cache)": warm,
        "kubejit token (cold: miss)": cold,
        "kubejit token (cold: OIDC)": lambda: cold(oidc_env, oidc_paths),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, run in cases.items():
            times[name].append(run())
    warm()  # the cache must still be valid and served after the cold runs refilled it
    return times


def measure_real(grant: str, home: Path, runs: int) -> dict[str, list[float]]:
    """Cold and warm against the broker of the caller's own login, with a private cache folder."""
    from kubejit.exec.cache import CachePaths
    from kubejit.local import session

    login = session.require()
    cache = home / "real-cache"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(XDG_CACHE_HOME=str(cache), PYTHONPYCACHEPREFIX=str(home / "pycache"))
    env["KUBERNETES_EXEC_INFO"] = CLIENT_GO_EXEC_INFO
    paths = CachePaths(grant, login.broker, root=str(cache / "kubejit" / "tokens"))
    token = [str(BIN / "kubejit"), "token", "--grant", grant, "--broker", login.broker]
    times: dict[str, list[float]] = {"real broker: warm": [], "real broker: cold (mint)": []}
    timed(token, env)
    for _ in range(runs):
        shutil.rmtree(paths.seen, ignore_errors=True)
        times["real broker: warm"].append(timed(token, env))
        Path(paths.entry).unlink()
        shutil.rmtree(paths.seen, ignore_errors=True)
        times["real broker: cold (mint)"].append(timed(token, env))
    return times


def report(times: dict[str, list[float]], runs: int) -> None:
    floor = statistics.median(times["python -I -c pass"])
    print(f"kubejit token benchmark: {runs} runs each, interleaved, median / p90 wall time")
    for name, values in times.items():
        median = statistics.median(values)
        p90 = sorted(values)[int(0.9 * (len(values) - 1))]
        print(
            f"  {name:28s} {median * 1000:7.1f} ms  p90 {p90 * 1000:7.1f} ms  "
            f"(x{median / floor:4.2f} of python start, {1000 * (median - floor):+6.1f} ms)"
        )
    warm = statistics.median(times["kubejit token (warm cache)"])
    verdict = "met" if warm <= floor + 0.010 else "NOT met"
    print(f"goal warm <= python start + 10 ms: {verdict} ({1000 * (warm - floor):+.1f} ms)")


if __name__ == "__main__":
    main()
