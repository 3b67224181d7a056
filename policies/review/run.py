"""Orchestration of one review: project → program under mocks → policy packs → key release → report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.site import Deployment
from policies.review import analyzer, key_release, privacy, project, reachability, report, sandbox
from policies.review import contract
from policies.review.fakes import aws as fake_aws
from policies.review.mocks import Recording

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY_RELEASE_POLICY = "ccp-key-release-simulation"

EXIT_OK, EXIT_VIOLATIONS, EXIT_INVALID = 0, 1, 2
# Where the review's mocks deploy (policies/review/fakes): what `get_caller_identity` answers there.
REVIEW_DEPLOYMENT = Deployment(aws_account_id=fake_aws.ACCOUNT, aws_partition="aws")


@dataclass
class ReviewResult:
    exit_code: int
    stack: str
    problems: list[str] = field(default_factory=list)
    recording: Recording | None = None
    analysis: analyzer.Analysis | None = None
    record: dict[str, Any] | None = None
    markdown: str = ""
    paths: tuple[Path, ...] = ()


def ccp_settings(proj: project.Project) -> Any:
    """The typed ccp config when the program is a ccp stack (has `ccp:collaboration`), else None.

    Read with the same `from_config_texts` + `parse` as `stacks.config.load` (what `pulumi up` runs),
    so the review and a deployment accept and refuse exactly the same stacks. The deploying account
    the site checks compare party accounts with is the one the review's mocks deploy to (what
    `load` gets from the caller identity when the program runs under them)."""
    from stacks.config import from_config_texts, parse

    values = from_config_texts(proj.config)
    if "collaboration" not in values:
        return None
    return parse(values, REVIEW_DEPLOYMENT)


def _simulate_key_release(recording: Recording, settings: Any) -> tuple[list[dict[str, Any]], str]:
    """Only ccp stacks have approved measurements to build the attested claim sets from."""
    if settings is None:
        return [], ""
    rows = key_release.simulate(recording, settings)
    return rows, "## Key-release simulation\n\n" + key_release.markdown_table(rows)


def _key_release_violations(rows: list[dict[str, Any]]) -> list[analyzer.Violation]:
    return [
        analyzer.Violation(
            policy=KEY_RELEASE_POLICY,
            pack="ccp-review",
            urn=row["key_urn"],
            enforcement="mandatory",
            severity="critical",
            message=(
                f"party {row['party']} ({row['cloud']}): case {row['case']!r} expected "
                f"{row['expected']} but the generated policy gives {row['decision']}"
            ),
        )
        for row in key_release.mismatches(rows)
    ]


def _reachability_violations(
    recording: Recording, entries: list[dict[str, Any]], enforce: bool
) -> list[analyzer.Violation]:
    """One violation per key with a path other than the attested workload, alarmed break-glass or a
    storage service's path: mandatory in prod (`enforce`), advisory elsewhere."""
    service_keys = reachability.service_bound(recording.resources)
    violations = []
    for entry in entries:
        paths = reachability.failing(entry, service_keys)
        if not paths:
            continue
        listed = "; ".join(f"{p['kind']} {p['principal']}" for p in paths)
        violations.append(
            analyzer.Violation(
                policy=reachability.POLICY,
                pack="ccp-review",
                urn=entry["key_urn"],
                enforcement="mandatory" if enforce else "advisory",
                severity="critical",
                message=f"party {entry['party']}: key reachable by non-attested paths: {listed}",
            )
        )
    return violations


def _is_prod(settings: Any, stack: str) -> bool:
    environment = getattr(settings, "environment", None) if settings is not None else None
    return str(getattr(environment, "value", environment) or stack) == "prod"


def evaluate(
    recording: Recording,
    settings: Any,
    stack: str,
    packs: list[analyzer.Pack],
) -> tuple[analyzer.Analysis, list[dict[str, Any]], str]:
    """Policy packs and key-release simulation over a recording (violations of both in one Analysis)."""
    extra: dict[str, dict[str, Any]] = {}
    for pack in packs:
        hook = getattr(pack.module, "config_for_stack", None)
        if hook is not None and settings is not None:
            extra.update(hook(settings))
    analysis = analyzer.analyze(recording.resources, packs, stack=stack, extra_config=extra)
    rows, key_release_md = _simulate_key_release(recording, settings)
    analysis.violations.extend(_key_release_violations(rows))
    return analysis, rows, key_release_md


def evaluate_reachability(
    recording: Recording, settings: Any, stack: str, analysis: analyzer.Analysis
) -> tuple[list[dict[str, Any]], str]:
    """Who can reach each party key; its violations are added to `analysis`."""
    entries = reachability.reachability(recording.resources)
    analysis.violations.extend(_reachability_violations(recording, entries, _is_prod(settings, stack)))
    return entries, reachability.markdown(entries)


def _out_problems(out_dir: Path | None, stack: str) -> list[str]:
    """`--out` must be a directory (created when missing): found before the program runs, not after."""
    if out_dir is None or not out_dir.exists() or out_dir.is_dir():
        return []
    return [
        f"--out {out_dir}: is an existing file, not a directory; give a directory for "
        f"review-{stack}.json and review-{stack}.md (it is created when missing)"
    ]


def _pack_problems(packs: list[analyzer.Pack], stack: str) -> list[str]:
    problems: list[str] = []
    for pack in packs:
        try:
            pack.stack_config(stack)
        except analyzer.PackConfigError as error:
            problems += error.problems
    return problems


def _settings(proj: project.Project) -> tuple[Any, list[str]]:
    from stacks.config import ConfigError

    try:
        return ccp_settings(proj), []
    except ConfigError as error:
        return None, [proj.where(p) for p in error.problems]


def _record(proj: project.Project, timeout: float, settings: Any) -> tuple[sandbox.Run, list[str]]:
    """Run the program in its own environment (a subprocess, as a preview: `policies/review/sandbox.py`);
    every way it can fail or end itself becomes problems (ccp config problems with their stack file line).

    A ccp stack (`settings`) is ccp's program wherever its directory is (a copy, a generated
    collaboration, a test fixture): its `sys.path` gets this repository after its own directory, as the
    review's own process had it when programs ran in-process."""
    program_run = sandbox.record(proj, timeout, paths=(REPO_ROOT,) if settings is not None else ())
    if program_run.kind == "config":
        return program_run, [proj.where(p) for p in program_run.problems]
    return program_run, program_run.problems


def _environment_note(program_run: sandbox.Run) -> dict[str, Any]:
    env = program_run.environment
    return {
        "python": str(env.python) if env else None,
        "source": env.source if env else None,
        "preview": True,
        "seconds": round(program_run.seconds, 2),
    }


def _environment_markdown(note: dict[str, Any]) -> str:
    return (
        "## How the program ran\n\n"
        f"As a preview (`pulumi.runtime.is_dry_run()` true; outputs no fake answers are unknown), with "
        f"{note['source']}: `{note['python']}` ({note['seconds']:.1f} s).\n"
    )


def _write(result: ReviewResult, out_dir: Path) -> list[str]:
    try:
        result.paths = report.write(out_dir, result.stack, result.record, result.markdown)
    except OSError as error:
        return [
            f"--out {out_dir}: cannot write the report ({error.strerror or error}: {error.filename}); "
            "give a writable directory"
        ]
    return []


def run_review(
    program_dir: Path = REPO_ROOT,
    stack: str = "dev",
    out_dir: Path | None = None,
    timeout: float = sandbox.DEFAULT_TIMEOUT,
    packs: list[analyzer.Pack] | None = None,
) -> ReviewResult:
    """Exit 0 only when the review ran to the end, wrote its report (when `out_dir` is given) and
    found no mandatory violation; 1 only for violations; 2 with `problems` for anything else.
    `timeout`: seconds the program may run (in its own process) before it is stopped (exit 2)."""
    result = ReviewResult(exit_code=EXIT_INVALID, stack=stack)
    problems = _out_problems(out_dir, stack)
    try:
        proj = project.load(Path(program_dir), stack)
    except project.ProjectError as error:
        result.problems = problems + error.problems
        return result
    packs = analyzer.discover_packs() if packs is None else packs
    settings, config_problems = _settings(proj)
    problems += config_problems + _pack_problems(packs, stack)
    if problems:
        result.problems = problems
        return result
    program_run, result.problems = _record(proj, timeout, settings)
    recording = program_run.recording
    if recording is None:
        return result
    note = _environment_note(program_run)

    analysis, rows, key_release_md = evaluate(recording, settings, stack, packs)
    reach, reach_md = evaluate_reachability(recording, settings, stack, analysis)
    # Who has signed the measurements the key policies are generated from: mandatory in prod.
    signed = contract.status(settings, proj.directory, stack)
    analysis.violations.extend(contract.violations(signed, stack, _is_prod(settings, stack)))
    sections = [key_release_md] if key_release_md else []
    sections += [contract.markdown(signed)] if signed is not None else []
    sections.append(reach_md)
    budget = privacy.summary(recording)
    if budget is not None:
        sections.append(privacy.markdown(budget))
    sections.append(_environment_markdown(note))
    for pack in packs:
        compliance = getattr(pack.module, "compliance_markdown", None)
        if compliance is not None:
            sections.append(compliance(analysis.policies, analysis.violations))
    coverage = dict(
        uncovered=analyzer.uncovered(recording.resources, packs), placeholder_invokes=recording.placeholder_invokes
    )
    result.record = report.to_json(
        stack, recording.resources, analysis, rows, reach, contract.record(signed), **coverage
    )
    result.record["program_environment"] = note
    if budget is not None:
        result.record["privacy"] = budget
    result.markdown = report.to_markdown(stack, recording.resources, analysis, sections, **coverage)
    if out_dir is not None:
        result.problems = _write(result, out_dir)
        if result.problems:
            return result
    result.recording, result.analysis = recording, analysis
    result.exit_code = EXIT_VIOLATIONS if analysis.mandatory else EXIT_OK
    return result
