"""`python -m policies.review [--stack dev] [--program DIR] [--out out]` — the offline review.

Exit codes: 0 the review completed, wrote its report and found no mandatory violation; 1 mandatory
violations (report written); 2 the review could not be completed (bad input, failing program,
internal error), with one line per problem.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from policies.review.run import EXIT_INVALID, REPO_ROOT, ReviewResult, run_review
from policies.review.sandbox import DEFAULT_TIMEOUT


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


BUG_HINT = "this is a bug in the review, not in your program: please file an issue with this line and the command"


def _internal_error(error: BaseException) -> str:
    """One line for an error inside the review itself: where it happened and what to do about it."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return f"ccp review: internal error: {type(error).__name__}: {text}{where}; {BUG_HINT}"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def main(argv: list[str] | None = None) -> int:
    """Exit 0 (clean report written), 1 (mandatory violations) or 2 (anything else): never a traceback.

    argparse keeps its own exits (2 for bad usage, 0 for --help); after that, whatever escapes the
    review, including SystemExit and KeyboardInterrupt, is reported in one line and exits 2, so a
    crash can never pass CI (0) or be read as "violations found" (1)."""
    parser = argparse.ArgumentParser(prog="python -m policies.review", description=__doc__)
    parser.add_argument("--stack", default="dev", help="stack name: reads Pulumi.<stack>.yaml (default dev)")
    parser.add_argument("--program", type=Path, default=REPO_ROOT, help="Pulumi Python project directory")
    parser.add_argument("--out", type=Path, default=Path("out"), help="where review-<stack>.{json,md} go")
    parser.add_argument(
        "--timeout", type=_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
        help=f"stop the program (exit 2) if it runs longer (default {DEFAULT_TIMEOUT:g})",
    )
    args = parser.parse_args(argv)
    try:
        started = time.perf_counter()
        result = run_review(args.program, args.stack, args.out, args.timeout)
        print(_summary(result, time.perf_counter() - started))
        return result.exit_code
    except KeyboardInterrupt:
        print("ccp review: interrupted before the review finished; no report was written (exit 2)", file=sys.stderr)
        return EXIT_INVALID
    except BaseException as error:  # noqa: BLE001 - the last resort: no traceback, never exit 0 or 1
        print(_internal_error(error), file=sys.stderr)
        return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
