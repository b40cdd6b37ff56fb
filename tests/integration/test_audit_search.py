"""`kubejit audit search` on a real SQLite store: each filter, each output format, and bad input."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from kubejit.cli.commands.audit import CSV_COLUMNS, app
from kubejit.errors import ConfigError, InvalidInput
from kubejit.grants.ports import AuditEvent
from kubejit.ids import GrantId
from kubejit.store import SqlAuditStore, create_store_engine, upgrade

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """alice on prod/payments (2 h ago), bob on prod/search (now), alice on dev/payments (now)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('search') / 'kubejit.db'}"
    engine = create_store_engine(url)
    upgrade(engine)
    store = SqlAuditStore(engine)
    spec = [
        ("alice", "g1", "prod", "payments", NOW - timedelta(hours=2)),
        ("bob", "g2", "prod", "search", NOW),
        ("alice", "g3", "dev", "payments", NOW),
    ]
    for person, grant, cluster, namespace, at in spec:
        details = {
            "namespaces": [namespace],
            "role": "view",
            "reason": f"why {grant}",
            "approvers": ["carol"],
        }
        store.record(
            [
                AuditEvent(
                    action=action,
                    actor=person if action == "grant.requested" else "kubejit",
                    at=at,
                    grant_id=GrantId(grant),
                    subject=person,
                    cluster=cluster,
                    details={**details, "source_ip": "10.0.0.1", "user_agent": 'ua "quoted", comma'},
                )
                for action in ("grant.requested", "grant.activated")
            ]
        )
    engine.dispose()
    return url


def search(url: str, *args: str) -> str:
    result = CliRunner().invoke(app, ["search", "--store-url", url, *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def grants_in(output: str) -> list[str]:
    return [json.loads(line)["grant_id"] for line in output.splitlines()]


@pytest.mark.parametrize(
    ("args", "grants"),
    [
        ([], ["g3", "g3", "g2", "g2", "g1", "g1"]),
        (["--person", "alice"], ["g3", "g3", "g1", "g1"]),
        (["--cluster", "prod"], ["g2", "g2", "g1", "g1"]),
        (["--namespace", "payments"], ["g3", "g3", "g1", "g1"]),
        (["--grant", "g2"], ["g2", "g2"]),
        (["--action", "grant.requested", "--person", "alice"], ["g3", "g1"]),
        (["--since", "1h"], ["g3", "g3", "g2", "g2"]),
        (["--since", "90d"], ["g3", "g3", "g2", "g2", "g1", "g1"]),  # a look-back is not capped at 31d
        (["--since", "2h30m", "--until", "1H"], ["g1", "g1"]),
        (["--until", "1h"], ["g1", "g1"]),
        (["--cluster", "prod", "--namespace", "payments", "--since", "3h"], ["g1", "g1"]),
        (["--limit", "3"], ["g3", "g3", "g2"]),
        (["--person", "nobody"], []),
    ],
)
def test_filters_combine_newest_first(url: str, args: list[str], grants: list[str]) -> None:
    assert grants_in(search(url, *args, "-o", "json")) == grants


def test_csv_has_one_row_per_event_with_origin_approvers_and_quoting(url: str) -> None:
    rows = list(csv.DictReader(io.StringIO(search(url, "--grant", "g1", "-o", "csv"))))
    assert list(rows[0]) == list(CSV_COLUMNS) and len(rows) == 2
    assert rows[0]["user_agent"] == 'ua "quoted", comma' and rows[0]["approvers"] == "carol"
    assert rows[0]["namespaces"] == "payments" and rows[0]["reason"] == "why g1"


def test_ocsf_and_table_outputs(url: str) -> None:
    ocsf = [json.loads(line) for line in search(url, "--grant", "g2", "-o", "ocsf").splitlines()]
    assert [e["class_uid"] for e in ocsf] == [3003, 3003] and ocsf[0]["src_endpoint"]["ip"] == "10.0.0.1"
    wide = CliRunner().invoke(app, ["search", "--store-url", url, "--grant", "g2"], env={"COLUMNS": "200"})
    table = wide.stdout
    assert "grant.activated" in table and "bob" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "neither a duration nor a time"),
        (["--until", "2026-13-01"], "neither a duration nor a time"),
        (["--since", "999999999d"], "reaches back before year 1"),
        (["--limit", "-1"], "--limit must be"),
    ],
)
def test_bad_filters_are_refused(url: str, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["search", "--store-url", url, *args])
    assert isinstance(result.exception, InvalidInput) and message in result.exception.message


def test_an_empty_store_is_not_a_kubejit_store(tmp_path: Path) -> None:
    (tmp_path / "empty.db").write_bytes(b"")
    result = CliRunner().invoke(app, ["search", "--store-url", f"sqlite:///{tmp_path / 'empty.db'}"])
    assert result.exception is not None and "no kubejit audit log" in str(result.exception)


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "-o", "csv"],
        ["who", "-c", "prod", "-n", "payments", "-o", "ocsf"],
        ["correlate", "--k8s-audit-log", "audit.log", "-o", "csv"],
    ],
    ids=["verify", "who", "correlate"],
)
def test_formats_only_search_prints_are_refused_not_ignored(url: str, args: list[str]) -> None:
    result = CliRunner().invoke(app, [*args, "--store-url", url])
    assert result.exit_code == 2 and "Invalid value for '--output'" in result.output, result.output


def test_a_compressed_or_missing_api_server_log_is_an_error_without_traceback(
    url: str, tmp_path: Path
) -> None:
    (tmp_path / "audit.log.gz").write_bytes(gzip.compress(b'{"kind": "Event"}\n'))
    runner = CliRunner()
    packed = runner.invoke(
        app, ["correlate", "--store-url", url, "--k8s-audit-log", str(tmp_path / "audit.log.gz")]
    )
    assert isinstance(packed.exception, InvalidInput) and "is not UTF-8 text" in packed.exception.message
    assert "gunzip" in str(packed.exception.hint)
    missing = runner.invoke(app, ["who", "-c", "prod", "-n", "payments", "--store-url", url,
                                  "--k8s-audit-log", str(tmp_path / "nope.log")])  # fmt: skip
    assert isinstance(missing.exception, ConfigError) and "cannot read" in missing.exception.message
