"""Who can reach this key: the `reachability` record and section, from the declared resources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policies.review.run import REPO_ROOT, run_review

PROGRAM = Path(__file__).parent / "programs" / "key_holders"
DIGEST = "sha256:" + "ab" * 32
WIF = f"principalSet://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/holders/attribute.image_digest/{DIGEST}"
PATH_FIELDS = ["kind", "principal", "condition", "attested", "alarmed"]


def _program(tmp_path: Path, extra_holder: bool) -> Path:
    program = tmp_path / "prog"
    program.mkdir()
    for name in ("Pulumi.yaml", "__main__.py", "Pulumi.prod.yaml"):
        (program / name).write_text((PROGRAM / name).read_text())
    if extra_holder:
        (program / "Pulumi.prod.yaml").write_text((PROGRAM / "Pulumi.prod.yaml").read_text().replace('"false"', '"true"'))
    return program


def _by_party(record: dict) -> dict:
    return {e["party"]: e for e in record["reachability"]}


def test_exact_paths_and_shape(tmp_path: Path) -> None:
    result = run_review(PROGRAM, "prod", tmp_path, packs=[])
    record = json.loads((tmp_path / "review-prod.json").read_text())
    for entry in record["reachability"]:
        assert list(entry) == ["key_urn", "party", "paths"]
        assert all(list(p) == PATH_FIELDS for p in entry["paths"])
    gcp, aws = _by_party(record)["alpha"], _by_party(record)["beta"]
    assert gcp["key_urn"].endswith("gcp:kms/cryptoKey:CryptoKey::gcp-data")
    assert gcp["paths"] == [{
        "kind": "attested-workload", "principal": WIF,
        "condition": "roles/cloudkms.cryptoKeyDecrypter on the crypto key; WIF condition: "
        f"assertion.swname == 'CONFIDENTIAL_SPACE' && assertion.submods.container.image_digest == '{DIGEST}'",
        "attested": True, "alarmed": False,
    }]
    assert aws["paths"] == [
        {"kind": "attested-workload", "principal": "arn:aws:iam::111122223333:role/enclave",
         "condition": "kms:RecipientAttestation:ImageSha384=" + "cd" * 48, "attested": True, "alarmed": False},
        # break-glass in an MFA session, but no CloudWatch alarm on the key's admin events is declared
        {"kind": "break-glass", "principal": "arn:aws:iam::111122223333:role/break-glass",
         "condition": '{"Bool": {"aws:MultiFactorAuthPresent": "true"}}', "attested": False, "alarmed": False},
    ]
    # prod fails on the unalarmed break-glass only
    mandatory = [v for v in result.analysis.violations if v.policy == "ccp-key-reachability"]
    assert [(v.enforcement, v.urn) for v in mandatory] == [("mandatory", aws["key_urn"])]
    assert result.exit_code == 1
    md = (tmp_path / "review-prod.md").read_text()
    section = md.split("## Who can reach this key", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) == 3
    assert "| beta | `aws-data` | break-glass | `arn:aws:iam::111122223333:role/break-glass` |" in section


def test_extra_iam_holder_is_not_attested_and_fails_prod(tmp_path: Path) -> None:
    result = run_review(_program(tmp_path, extra_holder=True), "prod", tmp_path / "out", packs=[])
    record = json.loads((tmp_path / "out" / "review-prod.json").read_text())
    gcp = _by_party(record)["alpha"]
    assert [(p["kind"], p["principal"], p["condition"], p["attested"]) for p in gcp["paths"]][1:] == [
        ("iam", "user:ops@example.com", "roles/cloudkms.cryptoKeyDecrypter on the crypto key", False),
    ]
    failing = [v for v in result.analysis.violations if v.urn == gcp["key_urn"]]
    assert [(v.policy, v.enforcement) for v in failing] == [("ccp-key-reachability", "mandatory")]
    assert "iam user:ops@example.com" in failing[0].message
    assert result.exit_code == 1


def test_other_stacks_report_it_as_advisory(tmp_path: Path) -> None:
    program = _program(tmp_path, extra_holder=True)
    (program / "Pulumi.dev.yaml").write_text((program / "Pulumi.prod.yaml").read_text())
    result = run_review(program, "dev", None, packs=[])
    assert {v.enforcement for v in result.analysis.violations if v.policy == "ccp-key-reachability"} == {"advisory"}
    assert result.exit_code == 0


@pytest.fixture(scope="module")
def prod_record(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("prod")
    result = run_review(REPO_ROOT, "prod", out)
    assert result.exit_code == 0, result.problems
    return json.loads((out / "review-prod.json").read_text())


def test_shipped_prod_stack_paths(prod_record: dict) -> None:
    keys = {e["key_urn"].split("::")[-1]: e for e in prod_record["reachability"]}
    aws = keys["prod-study-aws-clinic-aws-key"]
    assert [(p["kind"], p["principal"], p["attested"], p["alarmed"]) for p in aws["paths"]] == [
        ("attested-workload", "arn:aws:iam::111122223333:role/ccp-prod-study-prod-enclave", True, False),
        ("break-glass", "arn:aws:iam::111122223333:role/clinic-aws-key-break-glass", False, True),
        ("operator-ssm", "arn:aws:iam::111122223333:role/ccp-prod-study-prod-enclave", True, False),
        ("operator-ssm", "arn:aws:iam::111122223333:role/ccp-prod-study-prod-enclave", True, False),
    ]
    assert aws["paths"][0]["condition"].startswith("kms:RecipientAttestation:ImageSha384=")
    storage = keys["prod-study-aws-clinic-aws-storage-key"]
    assert [(p["kind"], p["principal"], p["attested"], p["alarmed"]) for p in storage["paths"]] == [
        ("break-glass", "arn:aws:iam::111122223333:role/clinic-aws-key-break-glass", False, True),
        ("service", "arn:aws:iam::111122223333:role/ccp-prod-study-prod-enclave", False, False),
    ]
    assert storage["paths"][0]["condition"] == '{"Bool": {"aws:MultiFactorAuthPresent": "true"}}'
    assert '"kms:ViaService": "s3.' in storage["paths"][1]["condition"]
    # no AWS key has a failing reachability path any more (the root-admin deferral is gone)
    assert not [v for v in prod_record["violations"] if v["policy"] == "ccp-key-reachability" and "aws:kms" in v["urn"]]
    gcp = keys["prod-study-gcp-lab-gcp-key-key"]
    assert [(p["kind"], p["attested"]) for p in gcp["paths"]] == [("attested-workload", True)]
    assert "image_digest in ['sha256:" in gcp["paths"][0]["condition"]
    gcp_storage = keys["prod-study-gcp-lab-gcp-storage-key-key"]
    assert [(p["kind"], p["principal"]) for p in gcp_storage["paths"]] == [
        ("service", "serviceAccount:service-123456789012@gs-project-accounts.iam.gserviceaccount.com"),
    ]
    # every party key is listed; shared service keys (EBS, audit, disks) are not
    assert {e["party"] for e in prod_record["reachability"]} == {"clinic-aws", "clinic-azure", "lab-gcp"}
    reach = [v for v in prod_record["violations"] if v["policy"] == "ccp-key-reachability"]
    assert {v["enforcement"] for v in reach} <= {"advisory"}
    assert all("advisory in this iteration" in v["message"] for v in reach)


def test_gcp_encrypt_only_owner_is_seal_only_and_passes(tmp_path: Path) -> None:
    """A GCP data owner with `cryptoKeyEncrypter` can seal for the workload but never decrypt: listed as
    `owner-encrypt`, not a failing path (the hospitals stack is judged as prod)."""
    result = run_review(REPO_ROOT, "hospitals", tmp_path, packs=[])
    record = json.loads((tmp_path / "review-hospitals.json").read_text())
    [gcp] = [e for e in record["reachability"] if e["party"] == "hospital-gcp" and "PartyDataKey" in e["key_urn"]]
    owner = [p for p in gcp["paths"] if p["principal"] == "group:data-owners@hospital-gcp.example"]
    assert [(p["kind"], p["condition"], p["attested"]) for p in owner] == [
        ("owner-encrypt", "roles/cloudkms.cryptoKeyEncrypter on the crypto key", False)
    ]
    assert not [v for v in result.analysis.violations if v.urn == gcp["key_urn"]]
    assert result.exit_code == 0, result.problems


# --- issue 12: long-lived access keys, Data Access Administrator, management groups, IAM conditions --


def _resource(type_: str, name: str, props: dict, **outputs: object):
    from policies.review.mocks import RecordedResource

    return RecordedResource(f"urn:pulumi:prod::p::{type_}::{name}", type_, name, True, None, [], {}, None, props, dict(outputs))


def _paths(resources: list) -> list[tuple[str, str, str, bool]]:
    from policies.review.reachability import reachability

    (entry,) = reachability(resources)
    return [(p["kind"], p["principal"], p["condition"], p["attested"]) for p in entry["paths"]]


def test_aws_user_with_an_active_access_key_is_a_path_to_a_delegated_key() -> None:
    root_policy = json.dumps({"Statement": [
        {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
    ]})
    key = _resource("aws:kms/key:Key", "data", {"policy": root_policy, "tags": {"party": "beta"}},
                    arn="arn:aws:kms:eu-central-1:111122223333:key/k")
    user_policy = _resource("aws:iam/userPolicy:UserPolicy", "deployer-kms", {"user": "deployer", "policy": json.dumps(
        {"Statement": [{"Effect": "Allow", "Action": ["kms:Decrypt", "kms:PutKeyPolicy"], "Resource": "*"}]})})
    access_key = _resource("aws:iam/accessKey:AccessKey", "deployer-key", {"user": "deployer", "status": "Active"})
    assert ("access-key", "user deployer", "active IAM access key; ", False) in _paths([key, user_policy, access_key])
    # an inactive key signs nothing: the user policy is still an IAM path, not an access-key one
    retired = _resource("aws:iam/accessKey:AccessKey", "deployer-key", {"user": "deployer", "status": "Inactive"})
    paths = _paths([key, user_policy, retired])
    assert ("iam-policy", "user deployer", "", False) in paths and not [p for p in paths if p[0] == "access-key"]


AZ_KEY_PROPS = {"keyName": "alpha-data", "vaultName": "alpha-vault", "resourceGroupName": "rg", "tags": {"party": "alpha"}}


def _assignment(name: str, role: str, scope: str):
    return _resource("azure-native:authorization:RoleAssignment", name, {
        "roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{role}", "scope": scope, "principalId": name})


def test_azure_data_access_administrator_and_management_group_scope_are_paths() -> None:
    key = _resource("azure-native:keyvault:Key", "alpha-data-key", AZ_KEY_PROPS)
    admin = _assignment("vault-admin", "8b54135c-b56d-4d72-a534-26097cfdc8d8",
                        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/alpha-vault")
    officer_mg = _assignment("mg-officer", "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
                             "/providers/Microsoft.Management/managementGroups/corp")
    paths = _paths([key, admin, officer_mg])
    assert [(kind, principal, attested) for kind, principal, _, attested in paths] == [
        ("rbac", "mg-officer", False), ("rbac-access-admin", "vault-admin", False),
    ]
    assert "can assign itself the roles that decrypt or release the key" in paths[1][2]
    assert "/providers/Microsoft.Management/managementGroups/corp" in paths[0][2]


def test_gcp_conditional_binding_on_a_party_key_is_its_own_path() -> None:
    key = _resource("gcp:kms/cryptoKey:CryptoKey", "alpha-data", {"name": "alpha", "keyRing": "projects/p/locations/l/keyRings/r",
                                                                   "labels": {"party": "alpha"}})
    key_id = "projects/p/locations/l/keyRings/r/cryptoKeys/alpha"
    expression = "request.time < timestamp('2030-01-01T00:00:00Z')"
    conditional = _resource("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", "ops", {
        "cryptoKeyId": key_id, "role": "roles/cloudkms.cryptoKeyEncrypter", "member": "group:ops@example.org",
        "condition": {"title": "until-2030", "expression": expression}})
    provider = _resource("gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider", "wif", {
        "workloadIdentityPoolId": "holders", "attributeCondition": f"assertion.submods.container.image_digest == '{DIGEST}'"})
    attested = _resource("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", "release", {
        "cryptoKeyId": key_id, "role": "roles/cloudkms.cryptoKeyDecrypter", "member": WIF,
        "condition": {"title": "until-2030", "expression": expression}})
    paths = _paths([key, conditional, provider, attested])
    assert paths[0][0] == "attested-workload" and paths[0][3] is True and f"under IAM condition {expression}" in paths[0][2]
    assert paths[1:] == [("iam-conditional", "group:ops@example.org",
                          f"roles/cloudkms.cryptoKeyEncrypter on the crypto key under IAM condition {expression}", False)]
