"""The offline review end to end: recording, analyzer servicer, reports and exit codes."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pulumi
import pulumi_aws as aws
from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    Severity,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.review import analyzer
from policies.review.mocks import run
from policies.review.run import run_review

PROGRAMS = Path(__file__).parent / "programs"


def _no_public_acls(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":
        if args.props.get("blockPublicAcls") is not True:
            report("blockPublicAcls must be true")


def _every_bucket_has_key(args: StackValidationArgs, report: ReportViolation) -> None:
    keys = [r for r in args.resources if r.resource_type == "aws:kms/key:Key"]
    buckets = [r for r in args.resources if r.resource_type == "aws:s3/bucket:Bucket"]
    for bucket in buckets:
        if not any(k in bucket.dependencies for k in keys):
            report("bucket without a key dependency", bucket.urn)


def tiny_pack(directory: Path) -> analyzer.Pack:
    module = types.ModuleType("tiny_pack")
    module.NAME = "tiny"
    module.VERSION = "0.0.1"
    module.ENFORCEMENT_LEVEL = EnforcementLevel.MANDATORY
    module.POLICIES = [
        ResourceValidationPolicy(
            name="s3-no-public-acls", description="no public ACLs", validate=_no_public_acls,
            severity=Severity.HIGH, tags=["nist:AC-3"],
        ),
        StackValidationPolicy(
            name="s3-bucket-depends-on-key", description="buckets depend on a key",
            validate=_every_bucket_has_key, enforcement_level=EnforcementLevel.ADVISORY, severity=Severity.LOW,
        ),
    ]
    module.INITIAL_CONFIG = {}
    return analyzer.Pack(directory, module)


def public_acl_program(tmp_path: Path) -> Path:
    """A copy of `plain_aws` whose stack turns public ACLs on: one known violation of the tiny pack."""
    program = tmp_path / "prog"
    program.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        (program / name).write_text((PROGRAMS / "plain_aws" / name).read_text())
    (program / "Pulumi.dev.yaml").write_text(
        (PROGRAMS / "plain_aws" / "Pulumi.dev.yaml").read_text().replace('"false"', '"true"')
    )
    return program


def test_clean_program_exits_0_and_writes_reports(tmp_path: Path) -> None:
    result = run_review(PROGRAMS / "plain_aws", "dev", tmp_path, packs=[tiny_pack(tmp_path)])
    assert result.exit_code == 0
    record = json.loads((tmp_path / "review-dev.json").read_text())
    assert record["stack"] == "dev"
    assert {r["type"] for r in record["resources"]} == {
        "aws:kms/key:Key", "aws:s3/bucket:Bucket", "aws:ssm/parameter:Parameter",
    }
    token = next(r for r in record["resources"] if r["name"] == "token")
    assert token["inputs"]["value"] == "[secret]"
    assert [(p["name"], p["enforcement"], p["severity"]) for p in record["policies"]] == [
        ("s3-no-public-acls", "mandatory", "high"),
        ("s3-bucket-depends-on-key", "advisory", "low"),
    ]
    assert record["key_release"] == []
    # the key has no policy: KMS applies the default one (account root), reported, advisory outside prod
    assert [(v["policy"], v["enforcement"]) for v in record["violations"]] == [("ccp-key-reachability", "advisory")]
    assert record["reachability"][0]["paths"] == [{
        "kind": "key-admin", "principal": "account root (default key policy)",
        "condition": "kms:* delegated to every IAM identity of the account", "attested": False, "alarmed": False,
    }]
    assert "**PASS**" in (tmp_path / "review-dev.md").read_text()


def test_known_violation_exits_1_and_is_in_json(tmp_path: Path) -> None:
    program = public_acl_program(tmp_path)
    result = run_review(program, "dev", tmp_path / "out", packs=[tiny_pack(tmp_path)])
    assert result.exit_code == 1
    record = json.loads((tmp_path / "out" / "review-dev.json").read_text())
    assert [(v["policy"], v["enforcement"], v["severity"], v["urn"].split("::")[-1]) for v in record["violations"]
            if v["policy"] != "ccp-key-reachability"] == [
        ("s3-no-public-acls", "mandatory", "high", "data-pab"),
    ]
    assert "blockPublicAcls must be true" in record["violations"][0]["message"]
    assert "**FAIL**" in (tmp_path / "out" / "review-dev.md").read_text()


def test_stack_config_file_overrides_enforcement(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "dev.json").write_text(json.dumps({"all": "advisory"}))
    program = public_acl_program(tmp_path)
    result = run_review(program, "dev", None, packs=[tiny_pack(tmp_path)])
    assert result.exit_code == 0
    assert [v.enforcement for v in result.analysis.violations if v.policy != "ccp-key-reachability"] == ["advisory"]


def test_config_with_properties_only_keeps_the_policy_mandatory(tmp_path: Path) -> None:
    """A config entry without enforcementLevel (e.g. allowed regions) must not downgrade the policy:
    the proto default of PolicyConfig.enforcementLevel is advisory."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "dev.json").write_text(json.dumps({"s3-no-public-acls": {"note": "properties only"}}))
    result = run_review(public_acl_program(tmp_path), "dev", None, packs=[tiny_pack(tmp_path)])
    assert [(v.policy, v.enforcement) for v in result.analysis.violations if v.policy != "ccp-key-reachability"] == [
        ("s3-no-public-acls", "mandatory")
    ]
    assert result.exit_code == 1


def test_unknown_policy_in_config_is_refused(tmp_path: Path) -> None:
    """A typo in the pack config is an input problem (exit 2 naming the file), not a crash."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "dev.json").write_text(json.dumps({"s3-typo": "advisory"}))
    result = run_review(PROGRAMS / "plain_aws", "dev", None, packs=[tiny_pack(tmp_path)])
    assert result.exit_code == 2
    assert "config/dev.json:1: 's3-typo' is not a policy of pack" in result.problems[0]


def test_stack_policy_sees_dependencies(tmp_path: Path) -> None:
    def program() -> None:
        key = aws.kms.Key("k")
        aws.s3.Bucket("with-key", opts=pulumi.ResourceOptions(depends_on=[key]))
        aws.s3.Bucket("without-key")

    recording = run(program)
    analysis = analyzer.analyze(recording.resources, [tiny_pack(tmp_path)], stack="dev")
    assert [(v.policy, v.urn.split("::")[-1], v.enforcement) for v in analysis.violations] == [
        ("s3-bucket-depends-on-key", "without-key", "advisory"),
    ]


def test_recording_keeps_parent_and_dependencies() -> None:
    class Pair(pulumi.ComponentResource):
        def __init__(self, name: str) -> None:
            super().__init__("ccp:test:Pair", name)
            key = aws.kms.Key(f"{name}-key", opts=pulumi.ResourceOptions(parent=self))
            aws.s3.Bucket(
                f"{name}-bucket",
                server_side_encryption_configuration=None,
                tags={"key": "x"},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[key]),
            )
            self.register_outputs({})

    recording = run(lambda: Pair("p"))
    pair, key, bucket = recording.named("p"), recording.named("p-key"), recording.named("p-bucket")
    assert pair.parent == recording.stack_urn and not pair.custom
    assert key.parent == pair.urn and bucket.parent == pair.urn
    assert bucket.dependencies == [key.urn]
    assert bucket.urn == "urn:pulumi:test::ccp::ccp:test:Pair$aws:s3/bucket:Bucket::p-bucket"


def test_failing_program_exits_2_with_location() -> None:
    result = run_review(PROGRAMS / "failing", "dev", None, packs=[])
    assert result.exit_code == 2
    assert "AttributeError" in result.problems[0] and "failing/__main__.py:6" in result.problems[0]


def test_missing_stack_file_exits_2_naming_the_stacks() -> None:
    result = run_review(PROGRAMS / "plain_aws", "prod", None, packs=[])
    assert result.exit_code == 2
    assert "no stack file Pulumi.prod.yaml (stacks here: dev)" in result.problems[0]


def test_invalid_ccp_config_exits_2_before_running(tmp_path: Path) -> None:
    program = tmp_path / "prog"
    program.mkdir()
    (program / "Pulumi.yaml").write_text("name: p\nruntime: python\n")
    (program / "__main__.py").write_text("raise SystemExit('the program must not run')\n")
    (program / "Pulumi.dev.yaml").write_text(
        "config:\n  ccp:environment: staging\n  ccp:collaboration: {name: x}\n"
    )
    result = run_review(program, "dev", None, packs=[])
    assert result.exit_code == 2
    # Each problem names the stack file and line it comes from.
    assert f"{program / 'Pulumi.dev.yaml'}:2: ccp:environment: 'staging' is not allowed: 'dev' or 'prod'" in result.problems


def test_unanswered_invoke_fails_the_review_naming_the_token(tmp_path: Path) -> None:
    """An invoke the fakes cannot answer must not silently change what the program declares."""
    program = tmp_path / "prog"
    program.mkdir()
    (program / "Pulumi.yaml").write_text("name: p\nruntime: python\n")
    (program / "Pulumi.dev.yaml").write_text("config:\n  aws:region: eu-west-1\n")
    (program / "__main__.py").write_text(
        "import pulumi, pulumi_aws as aws\n"
        "kind = pulumi.runtime.invoke('aws:ec2/getNoSuchThing:getNoSuchThing', {}).value\n"
        "aws.ec2.Instance('vm', ami='ami-0123', instance_type=kind['instanceType'])\n"
    )
    result = run_review(program, "dev", None, packs=[])
    assert result.exit_code == 2
    assert "no answer for invoke 'aws:ec2/getNoSuchThing:getNoSuchThing'" in result.problems[0]
    assert "function pulumi_aws.ec2.get_no_such_thing" in result.problems[0]
    assert "policies/review/fakes/aws.py" in result.problems[0]
