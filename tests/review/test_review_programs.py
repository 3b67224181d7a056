"""Reviewing real Pulumi Python programs (issue 16): each program in tests/review/programs/ exercises one
way a program brought to the review used to stop it before any policy ran.

- own_requirements: imports `pulumi_random`, which ccp's environment does not have; reviewed in a
  virtualenv built from its requirements.txt (cached under ~/.cache/ccp-review, so only the first run
  installs anything);
- local_config: a program-local module named `config`;
- exits / hangs / os._exit: contained in the program's own process, exit 2 with one line;
- data_sources: getAmi, getAvailabilityZones, getVpc, getCallerIdentity, getRegion, getPolicyDocument;
- computed_apply: an `apply` on a computed output no fake answers (None under `pulumi up` mocks);
- dry_run_guard: an `if not pulumi.runtime.is_dry_run():` branch that must not run in a review;
- answers_file: an invoke the fakes do not answer, answered by the program's ccp-review-invokes.json;
- generic_invokes: invokes no fake answers, answered by placeholders shaped by the provider SDK's result
  type and listed in the report; unanswerable: an invoke with no result class (exit 2, naming it);
- computed_names: a resource declared in an `apply` on a provider-filled name, and an output only known
  after creation (unknown); policies still see only declared inputs;
- uncovered: resources of a provider no policy declares (a made-up `acme`), listed as not covered.

Content is asserted with `run_review(..., packs=[])` (the program still runs in its own process) so the
assertions do not depend on the zero-trust pack; exit codes and messages through the CLI, as CI runs it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

from policies.review import analyzer, project, sandbox
from policies.review.fakes import invoke_answer, schema
from policies.review.fakes import ANSWERS_FILE
from policies.review.mocks import run_directory
from policies.review.run import REPO_ROOT, run_review

PROGRAMS = Path(__file__).parent / "programs"


@dataclass
class Review:
    code: int
    output: str
    seconds: float


def review(program: Path, out: Path, *extra: str, stack: str = "dev", timeout: float = 600) -> Review:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "policies.review", "--stack", stack, "--program", str(program), "--out", str(out),
         *extra],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
    )
    return Review(done.returncode, done.stdout + done.stderr, time.perf_counter() - started)


def assert_refused(result: Review, *expected: str) -> None:
    assert result.code == 2, result.output
    assert "Traceback" not in result.output, result.output
    assert "cannot review (exit 2)" in result.output, result.output
    for text in expected:
        assert text in result.output, result.output


def by_name(record: dict | None) -> dict[str, dict]:
    assert record is not None
    return {r["name"]: r for r in record["resources"]}


# --- the program's own environment --------------------------------------------------------------


def test_program_with_its_own_requirements_is_reviewed_in_its_own_virtualenv(tmp_path: Path) -> None:
    """pulumi_random is not in ccp's environment: the review builds (once, cached by the requirement
    set's hash) a virtualenv from the program's requirements.txt and runs the program there."""
    assert importlib.util.find_spec("pulumi_random") is None, "the test needs a provider ccp's venv lacks"
    program = PROGRAMS / "own_requirements"
    result = review(program, tmp_path / "out")
    if result.code == 2 and "offline?" in result.output:
        pytest.skip(f"the package index cannot be reached: {result.output}")
    assert result.code == 0, result.output
    record = json.loads((tmp_path / "out" / "review-dev.json").read_text())
    assert sorted((r["type"], r["name"]) for r in record["resources"]) == [
        ("random:index/randomPassword:RandomPassword", "db-password"),
        ("random:index/randomPet:RandomPet", "service-name"),
        ("random:index/randomString:RandomString", "suffix"),
    ]
    assert by_name(record)["service-name"]["inputs"]["length"] == 3  # stack config
    env = record["program_environment"]
    lines = sandbox.requirements(program)[1]  # type: ignore[index]
    assert env["python"].startswith(str(sandbox.cache_root() / sandbox.requirement_hash(lines)))
    assert "requirements.txt" in env["source"] and env["preview"] is True
    assert "How the program ran" in (tmp_path / "out" / "review-dev.md").read_text()
    # The second review of the same requirement set reuses the environment.
    again = review(program, tmp_path / "again")
    assert again.code == 0, again.output
    assert "building the program's environment" not in again.output


def test_program_local_config_module_is_the_programs_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """A module named `config` already loaded in the reviewing process cannot shadow the program's."""
    monkeypatch.setitem(sys.modules, "config", types.ModuleType("config"))  # e.g. a tool's own `config`
    result = run_review(PROGRAMS / "local_config", "dev", None, packs=[])
    assert result.exit_code == 0, result.problems
    assert by_name(result.record)["artifacts"]["inputs"]["tags"] == {
        "team": "data-platform", "stack": "dev", "source": "local-config-module",
    }


def test_environment_prefers_the_declared_virtualenv(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / "venv" / "bin").mkdir(parents=True)
    (root / "venv" / "bin" / "python").write_text("")
    (root / "Pulumi.yaml").write_text("name: p\nruntime:\n  name: python\n  options:\n    virtualenv: venv\n")
    (root / "Pulumi.dev.yaml").write_text("config: {}\n")
    (root / "__main__.py").write_text("")
    (root / "requirements.txt").write_text("pulumi>=3\n")
    env = sandbox.environment(project.load(root, "dev"))
    assert env.python == root / "venv" / "bin" / "python"
    assert "the program's virtualenv" in env.source


def test_no_requirements_and_no_virtualenv_uses_the_reviews_own_python() -> None:
    env = sandbox.environment(project.load(PROGRAMS / "plain_aws", "dev"))  # names venv/, which does not exist
    assert env.python == Path(sys.executable)
    assert "the review's own environment" in env.source


def test_requirement_hash_ignores_order_spacing_and_case() -> None:
    assert sandbox.requirement_hash(["pulumi>=3", "pulumi-random==4.18.0"]) == sandbox.requirement_hash(
        ["Pulumi-Random == 4.18.0", "pulumi >= 3"]
    )
    assert sandbox.requirement_hash(["pulumi>=3"]) != sandbox.requirement_hash(["pulumi>=3", "pulumi-random"])
    assert sandbox.requirement_hash(["pulumi"], "3.11") != sandbox.requirement_hash(["pulumi"], "3.12")


@pytest.mark.parametrize(
    ("pip_output", "expected"),
    [
        ("ERROR: Could not find a version that satisfies the requirement pulumi-random==99.0.0 (from versions: 4.18.0)\n"
         "ERROR: No matching distribution found for pulumi-random==99.0.0\n",
         "requirement 'pulumi-random==99.0.0' could not be installed: no such package or version on the package index"),
        ("WARNING: Retrying ... Failed to establish a new connection: [Errno -3] Temporary failure in name resolution\n"
         "ERROR: No matching distribution found for pulumi-random==4.18.0\n",
         "requirement 'pulumi-random==4.18.0' could not be installed: the package index cannot be reached (offline?)"),
        ("ERROR: Invalid requirement: 'pulumi>>3'\n", "requirement 'pulumi>>3' could not be installed"),
    ],
    ids=["no-such-version", "offline", "malformed"],
)
def test_pip_failure_names_the_requirement(pip_output: str, expected: str) -> None:
    assert expected in sandbox.pip_failure(pip_output)


def test_uninstallable_requirement_exits_2_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip's failure becomes one line naming the requirements file and the requirement (no index needed:
    a local path that does not exist fails the same way offline and online)."""
    root = tmp_path / "p"
    root.mkdir()
    (root / "Pulumi.yaml").write_text("name: p\nruntime: python\n")
    (root / "Pulumi.dev.yaml").write_text("config: {}\n")
    (root / "__main__.py").write_text("")
    (root / "requirements.txt").write_text("./no-such-package-dir\n")
    monkeypatch.setenv(sandbox.CACHE_ENV, str(tmp_path / "cache"))
    result = run_review(root, "dev", None, packs=[])
    assert result.exit_code == 2
    assert len(result.problems) == 1, result.problems
    assert "requirements.txt: cannot build the program's environment" in result.problems[0]
    assert "runtime.options.virtualenv" in result.problems[0]
    assert not (tmp_path / "cache" / sandbox.requirement_hash(["./no-such-package-dir"]) / sandbox.READY).exists()


# --- a program that ends or hangs ---------------------------------------------------------------


def test_program_calling_sys_exit_0_exits_2(tmp_path: Path) -> None:
    result = review(PROGRAMS / "exits", tmp_path / "out")
    assert_refused(result, "the program exited with status 0 (sys.exit) before the review finished",
                   f"{PROGRAMS / 'exits' / '__main__.py'}:9")
    assert not (tmp_path / "out").exists()


def test_hanging_program_is_stopped_at_the_timeout_and_exits_2(tmp_path: Path) -> None:
    result = review(PROGRAMS / "hangs", tmp_path / "out", "--timeout", "4", timeout=120)
    assert_refused(result, "the program did not finish within 4 s", "give --timeout SECONDS")
    assert result.seconds < 60
    assert not (tmp_path / "out").exists()


def test_timeout_must_be_positive(tmp_path: Path) -> None:
    result = review(PROGRAMS / "hangs", tmp_path / "out", "--timeout", "0")
    assert result.code == 2 and "is not a positive number of seconds" in result.output


def test_os_exit_is_contained_and_exits_2(tmp_path: Path) -> None:
    """`os._exit` ends the program's process at once; the review's own process reports it."""
    root = tmp_path / "p"
    root.mkdir()
    (root / "Pulumi.yaml").write_text("name: p\nruntime: python\n")
    (root / "Pulumi.dev.yaml").write_text("config: {}\n")
    (root / "__main__.py").write_text("import os\nprint('bye')\nos._exit(7)\n")
    result = review(root, tmp_path / "out")
    assert_refused(result, "the program ended its process with status 7 before the review finished",
                   "its last output: bye")


# --- data sources, computed outputs, preview ----------------------------------------------------


def test_common_data_sources_are_answered_with_stand_ins() -> None:
    result = run_review(PROGRAMS / "data_sources", "dev", None, packs=[])
    assert result.exit_code == 0, result.problems
    resources = by_name(result.record)
    instances = {name: r["inputs"] for name, r in resources.items() if r["type"] == "aws:ec2/instance:Instance"}
    assert sorted(i["availabilityZone"] for i in instances.values()) == ["eu-west-1a", "eu-west-1b"]
    amis = {i["ami"] for i in instances.values()}
    assert len(amis) == 1 and next(iter(amis)).startswith("ami-")
    assert {i["tags"]["image"] for i in instances.values()} == {"al2023-ami-20240101-x86_64"}
    group = next(r for r in resources.values() if r["type"] == "aws:ec2/securityGroup:SecurityGroup")
    assert group["inputs"]["vpcId"].startswith("vpc-")
    assert group["inputs"]["ingress"][0]["cidrBlocks"] == ["172.31.0.0/16"]
    role = next(r for r in resources.values() if r["type"] == "aws:iam/role:Role")
    assert role["inputs"]["tags"] == {"account": "111122223333", "region": "eu-west-1"}
    assert json.loads(role["inputs"]["assumeRolePolicy"]) == {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "ec2.amazonaws.com"}}],
    }
    # Deterministic: the same program gets the same stand-ins.
    again = run_review(PROGRAMS / "data_sources", "dev", None, packs=[])
    assert by_name(again.record)["web-eu-west-1a"]["inputs"]["ami"] == next(iter(amis))


def test_apply_on_a_computed_output_does_not_run_with_none() -> None:
    """Under `pulumi up` semantics the mocks' None reaches the callback and the program crashes; the
    review is a preview: the output is unknown, the callback does not run, the value is reported unknown."""
    proj = project.load(PROGRAMS / "computed_apply", "dev")
    with pytest.raises(AttributeError, match="upper"):
        run_directory(proj.main, project=proj.name, stack="dev", config=proj.config)  # as `pulumi up`
    result = run_review(PROGRAMS / "computed_apply", "dev", None, packs=[])
    assert result.exit_code == 0, result.problems
    assert by_name(result.record)["site-events"]["inputs"]["tags"] == {"origin": "[unknown]", "service": "s3"}


def test_apply_only_branch_does_not_run_in_the_review() -> None:
    proj = project.load(PROGRAMS / "dry_run_guard", "dev")
    with pytest.raises(RuntimeError, match="apply-only step ran"):
        run_directory(proj.main, project=proj.name, stack="dev", config=proj.config)  # as `pulumi up`
    result = run_review(PROGRAMS / "dry_run_guard", "dev", None, packs=[])
    assert result.exit_code == 0, result.problems
    assert [r["type"] for r in result.record["resources"]] == ["aws:dynamodb/table:Table"]
    assert result.record["program_environment"]["preview"] is True


def test_program_answers_an_invoke_the_fakes_do_not(tmp_path: Path) -> None:
    result = run_review(PROGRAMS / "answers_file", "dev", None, packs=[])
    assert result.exit_code == 0, result.problems
    assert by_name(result.record)["vm"]["inputs"]["tags"] == {"vcpus": "4"}
    assert by_name(result.record)["vm"]["inputs"]["instanceType"] == "m6i.xlarge"
    assert result.record["placeholder_invokes"] == []
    # Without the answers file the invoke gets the schema's placeholders, and the report says so.
    copy = tmp_path / "p"
    copy.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "__main__.py"):
        (copy / name).write_text((PROGRAMS / "answers_file" / name).read_text())
    placeholders = run_review(copy, "dev", None, packs=[])
    assert placeholders.exit_code == 0, placeholders.problems
    assert by_name(placeholders.record)["vm"]["inputs"]["tags"] == {"vcpus": "0"}
    assert by_name(placeholders.record)["vm"]["inputs"]["instanceType"] == "placeholder-instanceType"
    assert [i["token"] for i in placeholders.record["placeholder_invokes"]] == [
        "aws:ec2/getInstanceType:getInstanceType"
    ]


def test_malformed_answers_file_exits_2_naming_it(tmp_path: Path) -> None:
    copy = tmp_path / "p"
    copy.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "__main__.py"):
        (copy / name).write_text((PROGRAMS / "answers_file" / name).read_text())
    (copy / ANSWERS_FILE).write_text('["aws:ec2/getInstanceType:getInstanceType"]')
    result = review(copy, tmp_path / "out")
    assert_refused(result, f"{ANSWERS_FILE}: must map invoke tokens to result objects")


def test_copy_of_ccps_program_elsewhere_finds_ccps_components(tmp_path: Path) -> None:
    """A ccp stack is ccp's program wherever it lives (a generated collaboration, a fixture): its process
    gets this repository on `sys.path` after its own directory, so `from stacks.program import main` works."""
    root = tmp_path / "copy"
    root.mkdir()
    for name in ("Pulumi.yaml", "__main__.py", "Pulumi.dev.yaml"):
        (root / name).write_text((REPO_ROOT / name).read_text())
    result = run_review(root, "dev", None, packs=[])
    assert result.exit_code == 0, result.problems
    assert result.record is not None and len(result.record["resources"]) > 100
    assert result.record["program_environment"]["python"] == sys.executable  # no .venv beside the copy


# --- data sources answered from the provider's schema -------------------------------------------


def test_data_sources_without_a_fake_get_placeholders_of_their_result_type(tmp_path: Path) -> None:
    result = run_review(PROGRAMS / "generic_invokes", "dev", tmp_path, packs=[])
    assert result.exit_code == 0, result.problems
    resources = by_name(result.record)
    # The region keeps its hand-written stand-in (its value matters); the others are placeholders.
    assert resources["batch"]["inputs"]["tags"] == {"vcpus": "0", "arm": "False", "region": "eu-west-1"}
    assert resources["results-sse"]["inputs"]["rules"] == [
        {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": "placeholder-targetKeyArn"}}
    ]
    assert result.record["placeholder_invokes"] == [
        {"token": "aws:ec2/getInstanceType:getInstanceType", "function": "pulumi_aws.ec2.get_instance_type",
         "result_type": "GetInstanceTypeResult", "count": 1},
        {"token": "aws:kms/getAlias:getAlias", "function": "pulumi_aws.kms.get_alias",
         "result_type": "GetAliasResult", "count": 1},
        {"token": "gcp:storage/getBucket:getBucket", "function": "pulumi_gcp.storage.get_bucket",
         "result_type": "GetBucketResult", "count": 1},
    ]
    assert json.loads((tmp_path / "review-dev.json").read_text())["placeholder_invokes"] == result.record[
        "placeholder_invokes"
    ]
    markdown = (tmp_path / "review-dev.md").read_text()
    assert "## Data sources answered by placeholders" in markdown
    assert "| `aws:kms/getAlias:getAlias` | `pulumi_aws.kms.get_alias` | `GetAliasResult` | 1 |" in markdown
    assert "ccp-review-invokes.json" in markdown


def test_schema_placeholders_are_shape_correct_nested_and_deterministic() -> None:
    function, result_type, ip = schema.answer("azure-native:network:getPublicIPAddress")  # type: ignore[misc]
    assert (function, result_type) == ("pulumi_azure_native.network.get_public_ip_address", "GetPublicIPAddressResult")
    assert ip["ipAddress"] == "placeholder-ipAddress" and ip["idleTimeoutInMinutes"] == 0
    assert ip["ddosSettings"] == {"ddosProtectionPlan": {"id": "placeholder-id"}, "protectionMode": "placeholder-protectionMode"}
    assert ip["ipTags"] == [] and ip["tags"] == {}
    assert schema.answer("azure-native:network:getPublicIPAddress")[2] == ip  # type: ignore[index]
    _, _, image = schema.answer("gcp:compute/getImage:getImage")  # type: ignore[misc]
    assert image["diskSizeGb"] == 0 and image["labels"] == {} and image["family"] == "placeholder-family"
    assert schema.function_path("aws:index/getRegion:getRegion") == ("pulumi_aws", "get_region", "GetRegionResult")
    assert schema.answer("acme:inventory/getStock:getStock") is None
    # Hand-written answers keep precedence where the value's meaning matters.
    assert invoke_answer("aws:index/getCallerIdentity:getCallerIdentity", {})["accountId"] == "111122223333"


def test_invoke_without_a_result_class_names_the_function_and_the_answers_file(tmp_path: Path) -> None:
    result = review(PROGRAMS / "unanswerable", tmp_path / "out")
    assert_refused(
        result, "no answer for invoke 'acme:inventory/getStock:getStock'",
        "function pulumi_acme.inventory.get_stock", "no typed result class",
        f"{ANSWERS_FILE} beside its Pulumi.yaml",
    )


# --- computed outputs ---------------------------------------------------------------------------


def test_resources_declared_on_provider_filled_names_are_reviewed() -> None:
    """The queue's auto-name is known (as in a real preview), so the alarm declared in its `apply` is
    recorded; the load balancer's DNS name is known only after creation, so it stays unknown."""
    result = run_review(PROGRAMS / "computed_names", "dev", None, packs=[])
    assert result.exit_code == 0, result.problems
    resources = by_name(result.record)
    assert sorted(resources) == ["front", "jobs", "jobs-depth", "jobs-events"]
    assert resources["jobs-depth"]["inputs"]["dimensions"] == {"QueueName": "jobs"}
    assert resources["jobs-events"]["inputs"]["displayName"] == "events of jobs"
    assert resources["jobs-events"]["inputs"]["tags"] == {"url": "[unknown]"}
    assert "name" not in resources["jobs"]["inputs"] and resources["jobs"]["outputs"]["name"] == "jobs"
    assert "dnsName" not in resources["front"]["outputs"]


def _queue_is_named(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == "aws:sqs/queue:Queue" and not args.props.get("name"):
        report("queues must be named explicitly")


def test_policies_see_only_declared_inputs(tmp_path: Path) -> None:
    """The queue's name is filled by the review (an output), never declared: a policy that would pass
    on the filled value still sees the property missing."""
    module = types.ModuleType("named_pack")
    module.NAME, module.VERSION, module.ENFORCEMENT_LEVEL = "named", "0.0.1", EnforcementLevel.MANDATORY
    module.POLICIES = [ResourceValidationPolicy(name="sqs-named", description="named queues", validate=_queue_is_named)]
    module.INITIAL_CONFIG = {}
    result = run_review(PROGRAMS / "computed_names", "dev", None, packs=[analyzer.Pack(tmp_path, module)])
    assert result.exit_code == 1, result.problems
    assert [(v.policy, v.urn.split("::")[-1], v.message) for v in result.analysis.violations] == [  # type: ignore[union-attr]
        ("sqs-named", "jobs", "named queues\nqueues must be named explicitly")
    ]


# --- any provider -------------------------------------------------------------------------------


def test_resources_no_policy_covers_are_listed(tmp_path: Path) -> None:
    module = types.ModuleType("bucket_pack")
    module.NAME, module.VERSION, module.ENFORCEMENT_LEVEL = "buckets", "0.0.1", EnforcementLevel.ADVISORY
    module.POLICIES = [ResourceValidationPolicy(name="noop", description="reads buckets", validate=lambda a, r: None)]
    module.RESOURCE_TYPES = ("aws:s3/bucket:Bucket",)
    module.INITIAL_CONFIG = {}
    result = run_review(PROGRAMS / "uncovered", "dev", tmp_path, packs=[analyzer.Pack(tmp_path, module)])
    assert result.exit_code == 0, result.problems
    # Every resource is recorded; the component (acme:shop:Shop) is not a cloud resource to cover.
    assert len(result.record["resources"]) == 6  # type: ignore[index]
    assert result.record["uncovered"] == [  # type: ignore[index]
        {"type": "acme:widgets:Widget", "count": 2}, {"type": "aws:sns/topic:Topic", "count": 2},
    ]
    markdown = (tmp_path / "review-dev.md").read_text()
    assert "## Not covered by any policy" in markdown
    assert "4 resources of 2 types are recorded but no policy declares it reads their type" in markdown
    assert "| acme | `acme:widgets:Widget` | 2 |" in markdown
    # With ccp's own packs: coverage comes from the rules' declared types.
    real = run_review(PROGRAMS / "uncovered", "dev", None)
    uncovered = {u["type"]: u["count"] for u in real.record["uncovered"]}  # type: ignore[index]
    assert uncovered["acme:widgets:Widget"] == 2 and "aws:s3/bucket:Bucket" not in uncovered


def test_data_source_placeholders_reach_the_policies_as_unknowns() -> None:
    """A made-up invoke answer must never count as a declared setting: policies see it as unknown."""
    from policies.review import analyzer
    from policies.review.fakes.schema import PLACEHOLDER_PREFIX
    from policies.review.mocks import UNKNOWN

    props = {"kmsKeyId": PLACEHOLDER_PREFIX + "targetKeyArn", "tags": {"a": "b"}, "list": [PLACEHOLDER_PREFIX + "x", "y"]}
    assert analyzer._without_placeholders(props) == {"kmsKeyId": UNKNOWN, "tags": {"a": "b"}, "list": [UNKNOWN, "y"]}
    assert analyzer._struct(props)["kmsKeyId"] == UNKNOWN
