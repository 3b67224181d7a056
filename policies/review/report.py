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
    *,
    uncovered: list[dict[str, Any]] | None = None,
    placeholder_invokes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """`contract`: the measurement contract's {version, digest, parties: [{party, signed, valid}]}
    (policies/review/contract.py); None for programs that are not ccp stacks. `uncovered`: [{type, count}]
    of resources no policy covers (`analyzer.uncovered`); `placeholder_invokes`: [{token, function,
    result_type, count}] of invokes answered by schema placeholders (`fakes.placeholder_invokes`)."""
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
        "uncovered": uncovered if uncovered is not None else [],
        "placeholder_invokes": placeholder_invokes if placeholder_invokes is not None else [],
    }


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def uncovered_markdown(uncovered: list[dict[str, Any]]) -> str:
    lines = ["## Not covered by any policy", ""]
    if not uncovered:
        return "\n".join(lines + ["Every cloud resource type of the program is read by some policy.", ""])
    lines += [
        f"{sum(u['count'] for u in uncovered)} resources of {len(uncovered)} types are recorded but no policy "
        "declares it reads their type: nothing in this review checks them.",
        "",
        "| cloud | type | count |",
        "|---|---|---|",
    ]
    lines += [f"| {cloud_of(u['type'])} | `{u['type']}` | {u['count']} |" for u in uncovered]
    return "\n".join(lines + [""])


def placeholder_markdown(invokes: list[dict[str, Any]]) -> str:
    lines = ["## Data sources answered by placeholders", ""]
    if not invokes:
        return "\n".join(lines + ["None: every data source was answered by a stand-in or the program's answers file.", ""])
    lines += [
        "These invokes got shape-correct placeholders from the provider's result type (strings "
        "`placeholder-<field>`, numbers 0, false, empty lists), not values: settings derived from them are not "
        "what a deployment would get. Give real answers in `ccp-review-invokes.json` beside `Pulumi.yaml` "
        "(`{\"<token>\": {...result...}}`).",
        "",
        "| invoke | function | result type | calls |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{i['token']}` | `{i['function']}` | `{i['result_type']}` | {i['count']} |" for i in invokes
    ]
    return "\n".join(lines + [""])


def to_markdown(
    stack: str,
    resources: list[RecordedResource],
    analysis: Analysis,
    sections: list[str],
    *,
    uncovered: list[dict[str, Any]] | None = None,
    placeholder_invokes: list[dict[str, Any]] | None = None,
) -> str:
    """PR-comment report; `sections` are extra Markdown blocks (key release, compliance) in order.
    The coverage and placeholder sections follow the resource table (see `to_json` for their data)."""
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
    lines += [uncovered_markdown(uncovered or []), placeholder_markdown(placeholder_invokes or [])]

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
