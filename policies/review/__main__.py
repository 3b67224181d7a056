"""`python -m policies.review [--stack dev] [--program DIR] [--out out]` — the offline review."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from policies.review.run import REPO_ROOT, ReviewResult, run_review


def _summary(result: ReviewResult, seconds: float) -> str:
    if result.analysis is None:
        head = f"ccp review of stack '{result.stack}': cannot review (exit 2)"
        return "\n".join([head, *(f"  - {p}" for p in result.problems)])
    analysis = result.analysis
    mandatory = analysis.mandatory
    lines = [
        f"ccp review of stack '{result.stack}': {len(result.recording.resources)} resources, "  # type: ignore[union-attr]
        f"{len(analysis.policies)} policies, {len(mandatory)} mandatory / "
        f"{len(analysis.violations) - len(mandatory)} advisory violations, "
        f"{len(analysis.waivers)} waivers, "
        f"{len(result.record['key_release']) if result.record else 0} key-release cases ({seconds:.1f}s)",
    ]
    for v in mandatory[:20]:
        detail = v.message.splitlines()[-1]  # the analyzer prefixes the policy description
        lines.append(f"  MANDATORY [{v.severity}] {v.policy}: {detail}")
    if len(mandatory) > 20:
        lines.append(f"  ... {len(mandatory) - 20} more in the report")
    lines += [f"  report: {p}" for p in result.paths]
    lines.append("PASS" if not mandatory else "FAIL: mandatory violations")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m policies.review", description=__doc__)
    parser.add_argument("--stack", default="dev", help="stack name: reads Pulumi.<stack>.yaml (default dev)")
    parser.add_argument("--program", type=Path, default=REPO_ROOT, help="Pulumi Python project directory")
    parser.add_argument("--out", type=Path, default=Path("out"), help="where review-<stack>.{json,md} go")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = run_review(args.program, args.stack, args.out)
    print(_summary(result, time.perf_counter() - started))
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
