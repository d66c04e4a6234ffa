"""An incident's audit as text (the timeline) or a self-contained HTML page (the export)."""

from __future__ import annotations

import html
import json
from datetime import datetime
from typing import Any

from audit.timeline import AuditEntry


def render_text(incident_id: str, entries: list[AuditEntry], head: str | None = None) -> str:
    lines = [f"Audit of {incident_id} ({len(entries)} entries, from workflow history)", ""]
    indent = " " * 38  # under the summary column
    for entry in entries:
        first, *rest = entry.summary.split("\n")
        lines.append(f"{entry.at:%Y-%m-%d %H:%M:%S}  {entry.kind:<16} {first}")
        lines += [indent + line for line in rest]
    if head:
        lines += [
            "",
            f"head hash {head} (firebreak audit --format json exports the chain; --verify checks it)",
        ]
    return "\n".join(lines)


_CSS = """
:root { color-scheme: light; --ink: #1d2430; --muted: #5b6474; --line: #d9dee7; --bg: #f6f8fb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); }
header, main, footer { max-width: 1100px; margin: 0 auto; padding: 16px 24px; }
header { border-bottom: 1px solid var(--line); }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
code, pre { font: 12.5px/1.45 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
pre { margin: 0; white-space: pre-wrap; word-break: break-word; }
.meta { color: var(--muted); margin: 0; }
dl.totals { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.totals dt { color: var(--muted); }
dl.totals dd { margin: 0; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; vertical-align: top; padding: 8px; border-bottom: 1px solid var(--line); }
th { background: var(--bg); font-weight: 600; }
td.seq, td.time { white-space: nowrap; color: var(--muted); }
.tag { display: inline-block; padding: 1px 8px; border-radius: 10px; background: #e8edf5; font-size: 12px; }
tr.approve .tag, tr.remediation .tag { background: #dcf3e4; }
tr.reject .tag, tr.failure .tag, tr.failed .tag, tr.terminated .tag { background: #fde2e1; }
tr.closed .tag, tr.totals .tag { background: #fff1c9; }
details { margin-top: 6px; }
details summary { cursor: pointer; color: var(--muted); }
details pre { background: var(--bg); padding: 8px; border-radius: 6px; margin-top: 4px; }
.hash { color: var(--muted); font-size: 11px; margin-top: 4px; overflow-wrap: anywhere; }
footer { color: var(--muted); border-top: 1px solid var(--line); }
"""


def render_html(document: dict[str, Any]) -> str:
    """A self-contained page (inline CSS, no scripts, no external references); all text escaped."""

    def e(value: Any) -> str:
        return html.escape(str(value), quote=True)

    incident = document["incident"]
    entries: list[dict[str, Any]] = document["entries"]
    totals = next((r for r in reversed(entries) if r.get("kind") == "totals"), None)
    rows = []
    for record in entries:
        details = {
            k: v for k, v in record.items() if k not in ("seq", "at", "kind", "summary", "prev", "hash")
        }
        detail_json = json.dumps(details.get("details", {}), indent=2, sort_keys=True, ensure_ascii=False)
        kind = str(record.get("kind", ""))
        css_class = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in kind)
        rows.append(
            f'<tr class="{e(css_class)}" id="entry-{e(record["seq"])}">'
            f'<td class="seq">{e(record["seq"])}</td>'
            f'<td class="time"><time datetime="{e(record["at"])}">{e(_short_time(record["at"]))}</time></td>'
            f'<td><span class="tag">{e(kind)}</span></td>'
            f"<td><pre>{e(record.get('summary', ''))}</pre>"
            + (
                f"<details><summary>details</summary><pre>{e(detail_json)}</pre></details>"
                if details.get("details")
                else ""
            )
            + f'<div class="hash">sha256 {e(record["hash"])}</div></td></tr>'
        )
    summary_items = ""
    if totals is not None:
        facts = totals.get("details", {})
        summary_items = "".join(
            f"<dt>{e(label)}</dt><dd>{e(facts.get(key, ''))}</dd>"
            for label, key in (
                ("outcome", "outcome"),
                ("duration (s)", "duration_seconds"),
                ("LLM calls", "llm_calls"),
                ("LLM tokens", "llm_tokens"),
                ("LLM cost (USD)", "llm_cost_usd"),
                ("actions (successful)", "actions_successful"),
                ("actions (all)", "actions"),
                ("approval signals", "approval_signals"),
            )
        )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>Audit of {e(incident)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            "<header>",
            f"<h1>Audit of <code>{e(incident)}</code></h1>",
            f'<p class="meta">Run <code>{e(document.get("run_id") or "latest")}</code> &middot; '
            f"{e(document['count'])} entries rebuilt from the Temporal workflow history &middot; "
            f"head <code>{e(document['head'])}</code></p>",
            "</header>",
            "<main>",
            "<h2>Summary</h2>",
            f'<dl class="totals">{summary_items}</dl>',
            "<h2>Timeline</h2>",
            "<table>",
            '<thead><tr><th scope="col">#</th><th scope="col">time (UTC)</th>'
            '<th scope="col">kind</th><th scope="col">what happened</th></tr></thead>',
            "<tbody>",
            *rows,
            "</tbody>",
            "</table>",
            "</main>",
            "<footer>",
            "<p>Each entry's hash covers its content and the previous entry's hash. "
            "Check an export with <code>firebreak audit --verify FILE.json</code>.</p>",
            "</footer>",
            "</body>",
            "</html>",
            "",
        ]
    )


def _short_time(value: str) -> str:
    try:
        return f"{datetime.fromisoformat(value):%Y-%m-%d %H:%M:%S}"
    except ValueError:
        return value
