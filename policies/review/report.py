"""The review's outputs: a JSON record for tools and a Markdown report for pull requests."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from policies.review.analyzer import Analysis
from policies.review.mocks import RecordedResource, redact

SEVERITY_ORDER = ["critical", "high", "medium", "low", "unspecified"]


def cloud_of(type_: str) -> str:
    package = type_.removeprefix("pulumi:providers:").split(":", 1)[0]
    return {"azure-native": "azure"}.get(package, package)


def to_json(
    stack: str,
    resources: list[RecordedResource],
    analysis: Analysis,
    key_release: list[dict[str, Any]],
    reachability: list[dict[str, Any]] | None = None,
    contract: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`contract`: the measurement contract's {version, digest, parties: [{party, signed, valid}]}
    (policies/review/contract.py); None for programs that are not ccp stacks."""
    return {
        "stack": stack,
        "resources": [
            {
                "urn": r.urn,
                "type": r.type,
                "name": r.name,
                "parent": r.parent,
                "dependencies": r.dependencies,
                "propertyDependencies": r.property_dependencies,
                "inputs": r.inputs,
                "outputs": redact(r.outputs),
            }
            for r in resources
        ],
        "policies": [
            {k: p[k] for k in ("pack", "name", "severity", "enforcement", "tags")}
            for p in analysis.policies
        ],
        "violations": [asdict(v) for v in analysis.violations],
        "waivers": analysis.waivers,
        "key_release": key_release,
        "reachability": reachability if reachability is not None else [],
        "contract": contract,
    }


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(
    stack: str,
    resources: list[RecordedResource],
    analysis: Analysis,
    sections: list[str],
) -> str:
    """PR-comment report; `sections` are extra Markdown blocks (key release, compliance) in order."""
    lines = [f"# ccp offline review: stack `{stack}`", ""]
    mandatory = analysis.mandatory
    verdict = "**FAIL**" if mandatory else "**PASS**"
    lines += [
        f"{verdict}: {len(resources)} resources, {len(analysis.policies)} policies, "
        f"{len(mandatory)} mandatory and {len(analysis.violations) - len(mandatory)} advisory violations, "
        f"{len(analysis.waivers)} waivers applied.",
        "",
        "## Resources",
        "",
        "| cloud | type | count |",
        "|---|---|---|",
    ]
    counts = Counter((cloud_of(r.type), r.type) for r in resources)
    for (cloud, type_), count in sorted(counts.items()):
        lines.append(f"| {cloud} | `{type_}` | {count} |")
    per_cloud = Counter(cloud_of(r.type) for r in resources)
    lines += ["", "Per cloud: " + ", ".join(f"{c} {n}" for c, n in sorted(per_cloud.items())), ""]

    lines += ["## Violations", ""]
    if not analysis.violations:
        lines += ["None.", ""]
    for severity in SEVERITY_ORDER:
        group = [v for v in analysis.violations if v.severity == severity]
        if not group:
            continue
        lines += [f"### {severity} ({len(group)})", "", "| enforcement | policy | resource | message |", "|---|---|---|---|"]
        for v in sorted(group, key=lambda v: (v.enforcement != "mandatory", v.policy, v.urn)):
            resource = v.urn.split("::")[-1] if v.urn else "(stack)"
            lines.append(f"| {v.enforcement} | `{v.policy}` | `{resource}` | {_escape(v.message)} |")
        lines.append("")

    lines += ["## Waivers applied", ""]
    if not analysis.waivers:
        lines += ["None.", ""]
    else:
        lines += ["| policy | resource | type | reason |", "|---|---|---|---|"]
        for w in analysis.waivers:
            lines.append(
                f"| `{w['policy']}` | `{w['name']}` | `{w.get('type', '')}` | {_escape(str(w['reason']))} |"
            )
        lines.append("")
    for section in sections:
        lines += [section.rstrip(), ""]
    return "\n".join(lines)


def write(out_dir: Path, stack: str, record: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"review-{stack}.json"
    md_path = out_dir / f"review-{stack}.md"
    json_path.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")
    md_path.write_text(markdown)
    return json_path, md_path
