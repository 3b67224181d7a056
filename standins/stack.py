"""What the stand-ins enforce: the recorded resources of a review run (`out/review-STACK.json`).

The stand-ins never regenerate a policy: they read the key policy, release policy, pool provider and IAM
members the program declared, exactly as the review recorded them, so a hand edit of a recorded policy
changes what a stand-in decides (a test does that).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies.review.key_release.simulate import KEY_TYPES, is_party_key, key_party
from policies.review.mocks import Recording, RecordedResource

REPORTS = Path(__file__).resolve().parent.parent / "out"


class StackError(ValueError):
    """The review report is missing or unusable; the message says which file and how to make it."""


def report_path(stack: str) -> Path:
    return REPORTS / f"review-{stack}.json"


def load(stack_or_path: str | Path) -> Recording:
    """The recording of a review run, from `out/review-STACK.json` (or a path to such a file)."""
    path = Path(stack_or_path)
    if not path.suffix:
        path = report_path(str(stack_or_path))
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise StackError(f"{path}: no review report; run `make review STACK={path.stem.removeprefix('review-')}` first") from None
    except json.JSONDecodeError as error:
        raise StackError(f"{path}: not JSON ({error}); rerun the review to rewrite it") from None
    resources = report.get("resources") if isinstance(report, dict) else None
    if not isinstance(resources, list):
        raise StackError(f"{path}: has no `resources` list; rerun the review to rewrite it")
    if any("outputs" not in r for r in resources):
        raise StackError(f"{path}: written by an older review without resource outputs; rerun the review")
    return from_report(resources)


def from_report(resources: list[dict[str, Any]]) -> Recording:
    return Recording(
        stack_urn=None,
        resources=[
            RecordedResource(
                urn=r["urn"],
                type=r["type"],
                name=r["name"],
                custom=True,
                parent=r.get("parent"),
                dependencies=list(r.get("dependencies") or []),
                property_dependencies=dict(r.get("propertyDependencies") or {}),
                provider=None,
                properties=r.get("inputs") or {},
                outputs=r.get("outputs") or {},
            )
            for r in resources
        ],
    )


@dataclass(frozen=True)
class PartyKey:
    party: str
    cloud: str
    resource: RecordedResource


def party_keys(recording: Recording) -> list[PartyKey]:
    """Every party data key in the recording, in recording order per cloud type."""
    found: list[PartyKey] = []
    for type_, cloud in KEY_TYPES.items():
        for resource in recording.of_type(type_):
            if is_party_key(resource):
                found.append(PartyKey(str(key_party(resource)), cloud, resource))
    return sorted(found, key=lambda k: (k.party, k.resource.urn))
