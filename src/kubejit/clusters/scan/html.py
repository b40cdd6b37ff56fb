"""A ``ScanReport`` as one self-contained HTML page: inline CSS, no script, no external asset.

Meant to be opened from a CI artifact or sent by mail, so it must work offline and must never load
anything. Every value that came from the cluster (names, messages) is escaped: a binding named
``<script>`` is text on this page, nothing more. Findings are grouped by rule, most severe first,
each group explaining why it matters.
"""

from __future__ import annotations

from html import escape

from kubejit.clusters.scan.findings import RULES, Finding, ScanReport, Severity

_CSS = """
:root { --high: #b42318; --medium: #b54708; --low: #475467; --line: #e4e7ec; --ink: #101828; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       margin: 0; background: #f9fafb; }
header { background: #101828; color: #fff; padding: 28px 40px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header p { margin: 0; color: #d0d5dd; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 40px 60px; }
.cards { display: flex; gap: 16px; margin: 8px 0 28px; flex-wrap: wrap; }
.card { flex: 1 1 160px; background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 16px 20px; }
.card b { display: block; font-size: 32px; line-height: 1.1; }
.card.high b { color: var(--high); } .card.medium b { color: var(--medium); } .card.low b { color: var(--low); }
.card span { color: #475467; font-size: 13px; text-transform: uppercase; letter-spacing: .04em; }
details { background: #fff; border: 1px solid var(--line); border-radius: 10px; margin: 0 0 14px; }
summary { cursor: pointer; padding: 14px 20px; font-weight: 600; list-style: none; }
summary::-webkit-details-marker { display: none; }
summary .count { color: #475467; font-weight: 400; }
.why { margin: 0 20px 12px; color: #475467; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 9px 20px; border-top: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: #475467; background: #f9fafb; }
td.obj { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; word-break: break-all; }
.badge { display: inline-block; border-radius: 999px; padding: 1px 10px; font-size: 12px; font-weight: 600;
         color: #fff; }
.badge.high { background: var(--high); } .badge.medium { background: var(--medium); }
.badge.low { background: var(--low); }
.none { background: #ecfdf3; border: 1px solid #abefc6; border-radius: 10px; padding: 20px; color: #067647; }
footer { color: #667085; font-size: 13px; margin-top: 32px; }
"""


def _badge(severity: Severity) -> str:
    return f'<span class="badge {severity.value}">{severity.value}</span>'


def _cards(report: ScanReport) -> str:
    summary = report.summary()
    cards = [
        f'<div class="card {s.value}"><b>{summary[s.value]}</b><span>{s.value}</span></div>' for s in Severity
    ]
    objects = sum(report.counts.values())
    cards.append(f'<div class="card"><b>{objects}</b><span>objects read</span></div>')
    return f'<div class="cards">{"".join(cards)}</div>'


def _row(finding: Finding) -> str:
    subjects = "<br>".join(escape(str(s)) for s in finding.subjects) or "&ndash;"
    return (
        f"<tr><td>{_badge(finding.severity)}</td>"
        f'<td class="obj">{escape(str(finding.object))}<br><small>{escape(finding.object.path)}</small></td>'
        f"<td>{subjects}</td><td>{escape(finding.message)}</td></tr>"
    )


def _group(rule_id: str, findings: list[Finding]) -> str:
    info = RULES[rule_id]
    worst = max((f.severity for f in findings), key=lambda s: s.rank)
    rows = "".join(_row(f) for f in findings)
    opened = " open" if worst is Severity.HIGH else ""
    return (
        f"<details{opened}><summary>{_badge(worst)} {escape(info.title)} "
        f'<span class="count">({len(findings)})</span></summary>'
        f'<p class="why">{escape(info.help)}</p>'
        "<table><thead><tr><th>Severity</th><th>Object</th><th>Subjects</th><th>Finding</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></details>"
    )


def _groups(report: ScanReport) -> str:
    if not report.findings:
        return '<div class="none">No standing privilege found beyond the defaults of Kubernetes.</div>'
    by_rule: dict[str, list[Finding]] = {}
    for finding in report.findings:  # already most severe first
        by_rule.setdefault(finding.rule, []).append(finding)
    return "".join(_group(rule_id, findings) for rule_id, findings in by_rule.items())


def html_report(report: ScanReport) -> str:
    """The whole page, as text."""
    cluster = escape(report.cluster)
    when = escape(report.scanned_at.isoformat(timespec="seconds"))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>kubejit scan: {cluster}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>Standing privilege in {cluster}</h1><p>Scanned {when} by kubejit</p></header>"
        f"<main>{_cards(report)}{_groups(report)}"
        "<footer>Kubernetes' own default bindings and kubejit's expiring grants are not listed. "
        "`kubejit scan --suggest-policy` drafts a policy that replaces the standing bindings of people "
        "with just-in-time access.</footer></main></body></html>\n"
    )
