"""`python -m policies.review.comment OUT_DIR`: the pull-request comment for every review in OUT_DIR.

The CI workflow posts this as one comment it updates on every push (found again by `MARKER`), so a
reviewer sees one verdict table for every stack, the mandatory violations spelled out, and each stack's
full report folded underneath. GitHub refuses comments over 65,536 characters; folded reports are
shortened to fit, with a pointer to the workflow artifact that holds them whole.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

MARKER = "<!-- ccp-review -->"
LIMIT = 65_536
ARTIFACT_NOTE = "_(shortened: the full report is in the workflow's `review` artifact)_"


def _row(record: dict[str, Any]) -> str:
    violations = record.get("violations") or []
    mandatory = sum(1 for v in violations if v.get("enforcement") == "mandatory")
    advisory = len(violations) - mandatory
    mismatched = sum(1 for r in record.get("key_release") or [] if r.get("decision") != r.get("expected"))
    verdict = "❌ FAIL" if mandatory else "✅ PASS"
    return f"| `{record['stack']}` | {verdict} | {mandatory} | {advisory} | {mismatched} |"


MAX_LISTED = 40  # mandatory violations spelled out in the comment; the rest are counted


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _mandatory(record: dict[str, Any]) -> list[str]:
    return [
        f"- `{record['stack']}` **{v.get('policy')}** on `{v.get('urn', '').split('::')[-1]}`: "
        f"{_one_line(v.get('message', ''))}"
        for v in record.get("violations") or []
        if v.get("enforcement") == "mandatory"
    ]


def render(out: Path) -> str:
    """The comment body for the `review-*.json`/`.md` pairs in `out` (missing Markdown: table row only)."""
    records = [json.loads(p.read_text()) for p in sorted(out.glob("review-*.json"))]
    if not records:
        return f"{MARKER}\n## ccp review\n\nNo review report was written: see the `review` job's log.\n"
    head = [
        MARKER,
        "## ccp review",
        "",
        "| stack | verdict | mandatory | advisory | key-release mismatches |",
        "|---|---|---|---|---|",
        *(_row(r) for r in records),
    ]
    problems = [line for r in records for line in _mandatory(r)]
    if problems:
        more = len(problems) - MAX_LISTED
        head += ["", "### Mandatory violations", "", *problems[:MAX_LISTED]]
        if more > 0:
            head.append(f"- … and {more} more: {ARTIFACT_NOTE}")
    body = "\n".join(head) + "\n"
    folded = []
    for record in records:
        path = out / f"review-{record['stack']}.md"
        if path.exists():
            prefix = f"\n<details><summary>Full report: <code>{record['stack']}</code></summary>\n\n"
            folded.append((prefix, path.read_text(), "\n</details>\n"))
    wrappers = sum(len(prefix) + len(suffix) for prefix, _, suffix in folded)
    budget = (LIMIT - len(body) - wrappers) // max(1, len(folded))
    for prefix, text, suffix in folded:
        if len(text) > budget:
            text = text[: max(0, budget - len(ARTIFACT_NOTE) - 2)] + "\n\n" + ARTIFACT_NOTE
        body += prefix + text + suffix
    return body


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m policies.review.comment OUT_DIR (the directory holding review-*.json)", file=sys.stderr)
        return 2
    sys.stdout.write(render(Path(args[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
