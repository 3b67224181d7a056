"""The review must never fail open: every bad input or misbehaving program exits 2, in one line per
problem naming the file (and line), the field and the fix, and no Python traceback reaches the user.

Each case runs the review the way a user or CI does (`python -m policies.review` in a subprocess),
because exit codes and tracebacks are properties of the process, not of `run_review`. Out of scope:
`os._exit(n)` in a program ends the process at once, before any Python handler can run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from policies.review import __main__ as cli
from policies.review.mocks import run
from policies.review.run import REPO_ROOT

PACK_CONFIG_DIR = REPO_ROOT / "policies" / "zero_trust" / "config"
DEV = (REPO_ROOT / "Pulumi.dev.yaml").read_text()
CCP_MAIN = "from stacks.program import main\n\nmain()\n"


@dataclass
class Review:
    code: int
    output: str


def review(program: Path, stack: str, out: Path) -> Review:
    """`python -m policies.review` from the repository root, as `make review` runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "policies.review", "--stack", stack, "--program", str(program), "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    return Review(done.returncode, done.stdout + done.stderr)


def program(root: Path, main: str = "", manifest: str = "name: t\nruntime: python\n",
            stack: str = "dev", stack_text: str = "config: {}\n") -> Path:
    root.mkdir()
    (root / "Pulumi.yaml").write_text(manifest)
    (root / "__main__.py").write_text(main)
    (root / f"Pulumi.{stack}.yaml").write_text(stack_text)
    return root


def ccp_program(root: Path, stack_text: str) -> Path:
    """A copy of the repository's own program (`pulumi up`'s entry point) with an edited dev stack."""
    return program(root, CCP_MAIN, "name: ccp\nruntime: python\n", stack_text=stack_text)


@pytest.fixture
def pack_config() -> Iterator[Callable[[str], str]]:
    """A throwaway stack name whose zero-trust pack config file holds the given text (removed after)."""
    made: list[Path] = []

    def write(text: str) -> str:
        stack = f"errtest-{uuid.uuid4().hex[:8]}"
        path = PACK_CONFIG_DIR / f"{stack}.json"
        path.write_text(text)
        made.append(path)
        return stack

    yield write
    for path in made:
        path.unlink(missing_ok=True)


def assert_refused(result: Review, *expected: str) -> None:
    assert result.code == 2, result.output
    assert "Traceback" not in result.output, result.output
    assert "cannot review (exit 2)" in result.output, result.output
    for text in expected:
        assert text in result.output, result.output


# --- the program ends itself --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("main", "expected"),
    [
        ("import sys\nsys.exit(0)\n", "the program exited with status 0 (sys.exit) before the review finished"),
        ("import sys\nsys.exit(3)\n", "the program exited with status 3 (sys.exit) before the review finished"),
        ("raise KeyboardInterrupt\n", "the program stopped with KeyboardInterrupt before the review finished"),
    ],
    ids=["sys.exit(0)", "sys.exit(3)", "KeyboardInterrupt"],
)
def test_program_that_ends_itself_exits_2(tmp_path: Path, main: str, expected: str) -> None:
    prog = program(tmp_path / "p", main)
    result = review(prog, "dev", tmp_path / "out")
    assert_refused(result, expected, f"{prog / '__main__.py'}:")
    assert not (tmp_path / "out").exists()


def test_sys_exit_in_an_apply_callback_exits_2(tmp_path: Path) -> None:
    main = 'import sys, pulumi\npulumi.Output.from_input(1).apply(lambda _: sys.exit(0))\n'
    result = review(program(tmp_path / "p", main), "dev", tmp_path / "out")
    assert_refused(result, "the program exited with status 0 (sys.exit) before the review finished")


# --- pack config, --out -------------------------------------------------------------------------


def test_malformed_pack_config_exits_2_naming_file_and_line(tmp_path: Path, pack_config) -> None:
    stack = pack_config('{\n  "all": "advisory",\n  oops\n}\n')
    result = review(program(tmp_path / "p", stack=stack), stack, tmp_path / "out")
    assert_refused(result, f"policies/zero_trust/config/{stack}.json:3:3: not valid JSON", "fix the syntax there")


def test_policy_name_typo_in_pack_config_exits_2_with_suggestion(tmp_path: Path, pack_config) -> None:
    stack = pack_config('{\n  "aws-eks-cluster-disallow-public-endpoin": "advisory"\n}\n')
    result = review(program(tmp_path / "p", stack=stack), stack, tmp_path / "out")
    assert_refused(
        result,
        f"policies/zero_trust/config/{stack}.json:2: 'aws-eks-cluster-disallow-public-endpoin' is not a policy "
        "of pack 'ccp-zero-trust'; did you mean 'aws-eks-cluster-disallow-public-endpoint'?",
    )


def test_bad_enforcement_level_in_pack_config_exits_2(tmp_path: Path, pack_config) -> None:
    stack = pack_config('{"aws-eks-cluster-disallow-public-endpoint": {"enforcementLevel": "strict"}}')
    result = review(program(tmp_path / "p", stack=stack), stack, tmp_path / "out")
    assert_refused(result, "aws-eks-cluster-disallow-public-endpoint: enforcement level 'strict' is not one of")


def test_out_pointing_at_a_file_exits_2(tmp_path: Path) -> None:
    out = tmp_path / "report.txt"
    out.write_text("not a directory")
    result = review(program(tmp_path / "p"), "dev", out)
    assert_refused(result, f"--out {out}: is an existing file, not a directory")
    assert out.read_text() == "not a directory"


# --- project and stack files --------------------------------------------------------------------


def test_malformed_stack_yaml_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    prog = program(tmp_path / "p", stack_text="config:\n  aws:region: [eu-west-1,\n")
    result = review(prog, "dev", tmp_path / "out")
    assert_refused(result, f"{prog / 'Pulumi.dev.yaml'}:3:1: not valid YAML")
    assert "ScannerError" not in result.output and "ParserError" not in result.output


def test_project_without_name_exits_2_naming_the_field(tmp_path: Path) -> None:
    prog = program(tmp_path / "p", manifest="runtime: python\n")
    result = review(prog, "dev", tmp_path / "out")
    assert_refused(result, f"{prog / 'Pulumi.yaml'}: name: is required; add `name: <project>`")
    assert "KeyError" not in result.output


def test_config_given_as_a_list_exits_2_naming_the_field(tmp_path: Path) -> None:
    prog = program(tmp_path / "p", stack_text="config:\n  - aws:region: eu-west-1\n")
    result = review(prog, "dev", tmp_path / "out")
    assert_refused(result, f"{prog / 'Pulumi.dev.yaml'}:1: config: must be a mapping", "got a list")
    assert "AttributeError" not in result.output


# --- ccp config ---------------------------------------------------------------------------------


def three_site_problems(text: str) -> str:
    """The dev stack with one site-level problem on each cloud (each found only by that cloud's checks):
    an AWS party key region without a Nitro host, an Azure ownerPrincipal that is no object id, and a
    GCP Confidential Space host on a machine type that cannot run it."""
    edits = [
        ("        region: eu-west-1\n        allowedRegions: [eu-west-1, eu-central-1]",
         "        region: eu-central-1\n        allowedRegions: [eu-west-1, eu-central-1]"),
        ("      - name: clinic-azure\n        cloud: azure\n",
         "      - name: clinic-azure\n        ownerDecrypt: true\n        ownerPrincipal: alice@example.org\n"
         "        cloud: azure\n"),
        ("          tee: confidential-space\n          instanceType: n2d-standard-4",
         "          tee: confidential-space\n          instanceType: e2-standard-4"),
    ]
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_every_site_problem_is_reported_with_its_ccp_path_in_one_run(tmp_path: Path) -> None:
    """Checks of three cloud sites, all reported in one review run, one line each with file, line and
    `ccp:` path, before the program declares anything."""
    from tests.config.test_site_checks import THREE_PROBLEMS

    stack_text = three_site_problems(DEV)
    prog = ccp_program(tmp_path / "p", stack_text)
    result = review(prog, "dev", tmp_path / "out")
    assert_refused(result)
    stack_file = prog / "Pulumi.dev.yaml"
    lines = [line.removeprefix("  - ") for line in result.output.splitlines() if line.startswith("  - ")]
    assert lines == [
        f"{stack_file}:{line_of(stack_text, 'region: eu-central-1')}: {THREE_PROBLEMS[0]}",
        f"{stack_file}:{line_of(stack_text, 'ownerPrincipal: alice@example.org')}: {THREE_PROBLEMS[1]}",
        f"{stack_file}:{line_of(stack_text, 'instanceType: e2-standard-4')}: {THREE_PROBLEMS[2]}",
    ]
    assert "the program failed" not in result.output
    assert not (tmp_path / "out").exists()


def test_pulumi_up_path_reports_every_site_problem_before_any_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    """`pulumi up` runs stacks.program.main: the same three problems, and no resource registered."""
    from policies.review import project
    from policies.review.mocks import RecordingMonitor
    from stacks import config as stack_config
    from stacks.program import main
    from tests.config.test_site_checks import THREE_PROBLEMS

    texts = project.load(REPO_ROOT, "dev").config
    collaboration = json.loads(texts["ccp:collaboration"])
    collaboration["parties"][0]["region"] = "eu-central-1"
    collaboration["parties"][1].update(ownerDecrypt=True, ownerPrincipal="alice@example.org")
    collaboration["workload"]["hosts"][2]["instanceType"] = "e2-standard-4"
    texts["ccp:collaboration"] = json.dumps(collaboration)
    registered: list[str] = []
    original = RecordingMonitor.RegisterResource

    def spy(self: RecordingMonitor, request: Any) -> Any:
        if request.type != "pulumi:pulumi:Stack":
            registered.append(request.type)
        return original(self, request)

    monkeypatch.setattr(RecordingMonitor, "RegisterResource", spy)
    with pytest.raises(stack_config.ConfigError) as caught:
        run(main, project="ccp", stack="dev", config=texts)
    assert caught.value.problems == THREE_PROBLEMS
    assert registered == []


def test_unknown_ccp_azure_key_is_refused_by_the_review(tmp_path: Path) -> None:
    stack_text = DEV.replace("  ccp:environment: dev\n", "  ccp:environment: dev\n  ccp-azure:cvmOrchestratorObjectID: x\n")
    assert stack_text != DEV
    prog = ccp_program(tmp_path / "p", stack_text)
    result = review(prog, "dev", tmp_path / "out")
    assert_refused(
        result,
        f"{prog / 'Pulumi.dev.yaml'}:{line_of(stack_text, 'cvmOrchestratorObjectID')}: "
        "ccp-azure:cvmOrchestratorObjectID: unknown key (value 'x'); check its spelling (keys are camelCase)",
    )


def test_pulumi_up_path_refuses_an_unknown_ccp_azure_key_like_the_review() -> None:
    from policies.review import project
    from stacks import config as stack_config
    from stacks.program import main

    texts = project.load(REPO_ROOT, "dev").config
    texts["ccp-azure:cvmOrchestratorObjectID"] = "x"
    with pytest.raises(stack_config.ConfigError) as caught:
        run(main, project="ccp", stack="dev", config=texts)
    assert caught.value.problems == [
        "ccp-azure:cvmOrchestratorObjectID: unknown key (value 'x'); check its spelling (keys are camelCase)"
    ]


def test_misspelt_ccp_key_exits_2_naming_file_line_and_key(tmp_path: Path) -> None:
    prog = ccp_program(tmp_path / "p", DEV.replace("ccp:logRetentionDays", "ccp:logRetentionDay"))
    result = review(prog, "dev", tmp_path / "out")
    assert_refused(result, f"{prog / 'Pulumi.dev.yaml'}:7: ccp:logRetentionDay: unknown key (value 30)")


def test_region_typo_points_at_the_real_regions_module(tmp_path: Path) -> None:
    stack_text = DEV.replace("region: europe-west4\n        allowedRegions", "region: europe-westt4\n        allowedRegions")
    prog = ccp_program(tmp_path / "p", stack_text)
    result = review(prog, "dev", tmp_path / "out")
    assert_refused(result, "ccp:collaboration.parties[2].region: 'europe-westt4' is not a GCP region",
                   "(see components/regions.py for the accepted names)")
    assert (REPO_ROOT / "components" / "regions.py").is_file()
    assert "stacks/regions.py" not in result.output


def test_pulumi_up_path_refuses_a_misspelt_ccp_key_like_the_review() -> None:
    """`pulumi up` runs __main__.py -> stacks.program.main, which must not fall back to 365 days."""
    from policies.review import project
    from stacks import config as stack_config
    from stacks.program import main

    texts = project.load(REPO_ROOT, "dev").config
    texts["ccp:logRetentionDay"] = texts.pop("ccp:logRetentionDays")
    with pytest.raises(stack_config.ConfigError) as caught:
        run(main, project="ccp", stack="dev", config=texts)
    assert caught.value.problems == [
        "ccp:logRetentionDay: unknown key (value 30); check its spelling (keys are camelCase)"
    ]
    # A RunError: the Pulumi CLI prints its message without a Python traceback.
    import pulumi

    assert isinstance(caught.value, pulumi.RunError)


# --- the last resort ----------------------------------------------------------------------------


@pytest.mark.parametrize("error", [RuntimeError("boom"), SystemExit(0), SystemExit(1)], ids=repr)
def test_internal_error_exits_2_with_a_bug_hint_and_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: BaseException
) -> None:
    def broken(*_: object) -> None:
        raise error

    monkeypatch.setattr(cli, "run_review", broken)
    assert cli.main(["--stack", "dev"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert f"ccp review: internal error: {type(error).__name__}" in captured.err
    assert "please file an issue" in captured.err


def test_interrupt_of_the_review_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_review", interrupted)
    assert cli.main(["--stack", "dev"]) == 2
    assert "interrupted before the review finished; no report was written" in capsys.readouterr().err
