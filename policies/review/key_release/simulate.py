"""The key-release simulation: every party key in a recording, judged as its cloud would judge it.

Inputs are what the program declared (the recorded resource inputs), never what a generator would
produce: a hand edit, a wrong wiring or a missing statement shows up as a decision that differs
from the expected one. Which workload identities exist is read from the recording too (the role of
the enclave hosts' instance profile, the Confidential Space VMs' service account), because that is
who will actually ask for the key.

One row per (party key, case). A case that runs several requests (one per approved host, image or
attestation authority) is aggregated fail-closed: `approved-production` releases only if every
approved host is released; a deny case is `release` if any of its requests is released. A
document this code cannot judge gives `error`, which never equals the expected decision.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Final, Iterable, Mapping

from components.attestation.azure_release_policy import decode_release_policy
from components.attestation.gcp_condition import HWMODEL_BY_CONFIDENTIAL_TYPE
from components.key_purpose import PURPOSE_TAG, is_party_data
from components.model import azure_cvm_host
from policies.review.key_release import aws, azure, claims, disk, gcp, operator
from policies.review.key_release.aws import PolicyError
from policies.review.mocks import Recording, RecordedResource, UNKNOWN, dig, unwrapped

KEY_TYPES: Final[dict[str, str]] = {
    "aws:kms/key:Key": "aws",
    "azure-native:keyvault:Key": "azure",
    "gcp:kms/cryptoKey:CryptoKey": "gcp",
}
PARTY_KEY_COMPONENT: Final = "PartyDataKey"
COLUMNS: Final = ("party", "cloud", "key_urn", "key_account", "case", "expected", "decision")
# Operator cases every party key has (operator.py): `operator-repolicies-key` (the account's /
# subscription's / project's operator changes who may use the key: AWS PutKeyPolicy/CreateGrant,
# Azure release-policy write on the key, GCP setIamPolicy or the pool provider's condition) and
# `operator-runs-code-on-host` (code on the workload host outside the attested measurement).
OPERATOR_CASES: Final[tuple[str, ...]] = operator.CASES
# Cases only one cloud's keys have (none today).
CLOUD_CASES: Final[dict[str, tuple[str, ...]]] = {}


def cases(cloud: str) -> tuple[str, ...]:
    return tuple(claims.CASES) + OPERATOR_CASES + CLOUD_CASES.get(cloud, ())


def expected(case: str) -> str:
    return claims.EXPECTED.get(case, "deny")

Decisions = dict[str, str]


def _type_chain(urn: str) -> list[str]:
    """`urn:pulumi:stack::project::a$b$c::name` -> [a, b, c]."""
    parts = urn.split("::")
    return parts[2].split("$") if len(parts) >= 4 else []


def is_party_key(resource: RecordedResource) -> bool:
    """A key tagged with a party that is a party data key: declared by a party data key component,
    or judged one by its `ccp-key-purpose` (tagged `party-data`, untagged or an unknown value: fail
    closed). Service keys (storage at rest, disks, audit, cluster secrets) and the Azure confidential
    OS disk key release nothing to a party's workload and are not judged here."""
    if key_party(resource) is None:
        return False
    if any(t.endswith(f":{PARTY_KEY_COMPONENT}") for t in _type_chain(resource.urn)):
        return True
    return is_party_data(key_purpose(resource))


def _tags(resource: RecordedResource) -> Any:
    return dig(unwrapped(resource), "labels" if resource.type.startswith("gcp:") else "tags")


def key_party(resource: RecordedResource) -> str | None:
    return dig(_tags(resource), "party")


def key_purpose(resource: RecordedResource) -> str | None:
    """The key's `ccp-key-purpose` tag (AWS, Azure) or label (GCP)."""
    return dig(_tags(resource), PURPOSE_TAG)


def _verdict(case: str, results: Iterable[bool]) -> str:
    results = list(results)
    if case == "approved-production":
        return "release" if results and all(results) else "deny"
    return "release" if any(results) else "deny"


def _judge(cases: Mapping[str, Callable[[], Iterable[bool]]]) -> Decisions:
    decisions: Decisions = {}
    for case, requests in cases.items():
        try:
            decisions[case] = _verdict(case, requests())
        except (PolicyError, ValueError, KeyError, TypeError) as error:
            decisions[case] = f"error: {error}"
    return decisions


# --- AWS -----------------------------------------------------------------------------------------


def enclave_role_arns(recording: Recording) -> list[str]:
    """ARNs of the roles of instance profiles used by enclave-enabled launch templates/instances."""
    profiles: set[str] = set()
    for resource in recording.of_type("aws:ec2/launchTemplate:LaunchTemplate") + recording.of_type(
        "aws:ec2/instance:Instance"
    ):
        props = unwrapped(resource)
        if dig(props, "enclaveOptions.enabled") is not True:
            continue
        profile = props.get("iamInstanceProfile")
        if isinstance(profile, Mapping):
            profile = profile.get("name") or profile.get("arn")
        if isinstance(profile, str):
            profiles.add(profile.rsplit("/", 1)[-1])
    roles: set[str] = set()
    for resource in recording.of_type("aws:iam/instanceProfile:InstanceProfile"):
        name = resource.outputs.get("name") or unwrapped(resource).get("name") or resource.name
        if name in profiles and isinstance(unwrapped(resource).get("role"), str):
            roles.add(unwrapped(resource)["role"])
    arns: list[str] = []
    for resource in recording.of_type("aws:iam/role:Role"):
        name = resource.outputs.get("name") or unwrapped(resource).get("name") or resource.name
        arn = resource.outputs.get("arn")
        if (name in roles or arn in roles) and isinstance(arn, str):
            arns.append(arn)
    return sorted(set(arns))


def judge_aws(resource: RecordedResource, recording: Recording, settings: Any) -> Decisions:
    text = unwrapped(resource).get("policy")
    if not isinstance(text, str) or text == UNKNOWN:
        return {case: "error: the key has no known policy document" for case in cases("aws")}
    policy = json.loads(text)
    measurements = settings.collaboration.measurements
    roles = enclave_role_arns(recording)
    account = roles[0].split(":")[4] if roles else "000000000000"
    approved = claims.nitro_pcrs(measurements, "approved")
    others = [
        claims.other_role_arn(claims.OTHER_AWS_ACCOUNT, "other-collaboration"),
        claims.other_role_arn(account, "other-collaboration"),
    ]
    admin = f"arn:aws:iam::{account}:role/ccp-administrator"
    return _judge(
        {
            "approved-production": lambda: (aws.approved_release(policy, r, approved) for r in roles),
            "debug-mode": lambda: (aws.release(policy, r, claims.nitro_pcrs(measurements, "debug")) for r in roles),
            "unapproved-image": lambda: (
                aws.release(policy, r, claims.nitro_pcrs(measurements, "other:unapproved")) for r in roles
            ),
            "other-collaboration": lambda: (
                aws.release(policy, principal, pcrs)
                for principal in others
                for pcrs in (claims.nitro_pcrs(measurements, "other:other-collaboration"), approved)
            ),
            "no-attestation": lambda: (aws.release(policy, p, None) for p in [*roles, admin]),
            # The key's account's operators; for a key in the party's own account (cross-account from
            # the enclave role) the workload account's operators too.
            "operator-repolicies-key": lambda: (
                aws.policy_change(policy, p)
                for p in dict.fromkeys(
                    aws.operator_principals(_key_account(resource, account)) + aws.operator_principals(account)
                )
            ),
            "operator-runs-code-on-host": lambda: operator.aws_operator_host_requests(
                policy, roles, approved, claims.nitro_pcrs(measurements, "debug")
            ),
        }
    )


def _key_account(resource: RecordedResource, default: str) -> str:
    """The account the key lives in (its ARN), else the enclave role's account."""
    arn = resource.outputs.get("arn")
    parts = arn.split(":") if isinstance(arn, str) else []
    return parts[4] if len(parts) > 4 and parts[4].isdigit() else default


# --- Azure ---------------------------------------------------------------------------------------


def azure_workloads(settings: Any) -> list[claims.AzureWorkload]:
    measurements = settings.collaboration.measurements
    snp = measurements.sev_snp
    return [
        claims.AzureWorkload(
            tee=host.tee,
            container=host.tee == "confidential-containers"
            or (
                host.tee == "sev-snp"
                and (host.kubernetes or (snp is not None and snp.launch_measurement is None and measurements.azure_cvm is None))
            ),
            measured_guest=azure_cvm_host(host) and measurements.azure_cvm is not None,
        )
        for host in settings.collaboration.workload.hosts
        if host.cloud == "azure"
    ]


GUEST_POLICY: Final = "ccp:azure:AttestationPolicy"


def guest_policies(recording: Recording) -> dict[str, str]:
    """authority -> the AzureGuest attestation policy text the stack recorded for that provider."""
    found: dict[str, str] = {}
    for resource in recording.of_type(GUEST_POLICY):
        inputs = unwrapped(resource)
        authority, policy = inputs.get("authority"), inputs.get("policy")
        if isinstance(authority, str) and isinstance(policy, str) and authority != UNKNOWN:
            found[authority.rstrip("/")] = policy
    return found


def judge_azure(resource: RecordedResource, recording: Recording, settings: Any) -> Decisions:
    data = dig(unwrapped(resource), "properties.releasePolicy.data")
    if not isinstance(data, str) or data == UNKNOWN:
        return {case: "error: the exportable key has no known release policy" for case in cases("azure")}
    policy = decode_release_policy(data)
    measurements = settings.collaboration.measurements
    workloads = azure_workloads(settings)
    issuers = azure.authorities(policy)
    recorded = guest_policies(recording)

    def tokens(variant: str) -> Iterable[bool]:
        return (
            azure.evaluate(policy, claims.maa_token(measurements, w, issuer, variant, recorded))
            for w in workloads
            for issuer in issuers
        )

    def approved() -> Iterable[bool]:
        # Each approved host must be released by some authority it can attest with.
        return (
            any(azure.evaluate(policy, claims.maa_token(measurements, w, i, "approved", recorded)) for i in issuers)
            for w in workloads
        )

    return _judge(
        {
            "approved-production": approved,
            "debug-mode": lambda: tokens("debug"),
            "unapproved-image": lambda: [*tokens("other:unapproved"), *tokens("other-product:unapproved")],
            "other-collaboration": lambda: [
                *tokens("other:other-collaboration"),
                *tokens("other-tee:other-collaboration"),
                # A confidential VM (any code in it, operator included) showing our SEV-SNP values.
                *tokens("cvm:other-collaboration"),
            ],
            "no-attestation": lambda: [azure.evaluate(policy, None)],
            "operator-repolicies-key": lambda: [bool(operator.azure_repolicy_paths(resource, recording))],
            "operator-runs-code-on-host": lambda: operator.azure_host_requests(
                policy, measurements, workloads, issuers, recording, recorded
            ),
        }
    )


# --- GCP -----------------------------------------------------------------------------------------


def _project_number(project: str) -> str:
    """The project number the program itself was given for this project id (same fakes)."""
    from policies.review.fakes import invoke_answer

    return str(invoke_answer("gcp:organizations/getProject:getProject", {"projectId": project})["number"])


def gcp_providers(recording: Recording) -> list[gcp.Provider]:
    providers: list[gcp.Provider] = []
    for resource in recording.of_type("gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider"):
        props = unwrapped(resource)
        oidc = props.get("oidc")
        if not isinstance(oidc, Mapping):
            continue  # AWS/SAML providers do not accept Confidential Space tokens
        name = resource.outputs.get("name") or ""
        parts = name.split("/")
        if len(parts) >= 8 and parts[0] == "projects":
            number, pool = parts[1], parts[5]
        else:
            number, pool = _project_number(props.get("project", "")), props.get("workloadIdentityPoolId", "")
        providers.append(
            gcp.Provider(
                project_number=number,
                pool_id=pool,
                provider_id=props.get("workloadIdentityPoolProviderId", ""),
                issuer=oidc.get("issuerUri", ""),
                allowed_audiences=list(oidc.get("allowedAudiences") or []),
                condition=props.get("attributeCondition"),
                mapping=dict(props.get("attributeMapping") or {}),
            )
        )
    return providers


def _refers_to(binding: RecordedResource, key: RecordedResource) -> bool:
    if key.urn in binding.property_dependencies.get("cryptoKeyId", []):
        return True
    return unwrapped(binding).get("cryptoKeyId") in {key.outputs.get("id"), key.outputs.get("selfLink")}


def gcp_bindings(recording: Recording, key: RecordedResource) -> list[gcp.Binding]:
    bindings: list[gcp.Binding] = []
    for resource in recording.of_type("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"):
        if _refers_to(resource, key):
            props = unwrapped(resource)
            bindings.append(gcp.Binding(props.get("role", ""), props.get("member", "")))
    for resource in recording.of_type("gcp:kms/cryptoKeyIAMBinding:CryptoKeyIAMBinding"):
        if _refers_to(resource, key):
            props = unwrapped(resource)
            bindings += [gcp.Binding(props.get("role", ""), m) for m in props.get("members") or []]
    for resource in recording.of_type("gcp:kms/cryptoKeyIAMPolicy:CryptoKeyIAMPolicy"):
        if _refers_to(resource, key):
            policy = json.loads(unwrapped(resource).get("policyData") or "{}")
            for entry in policy.get("bindings", []):
                bindings += [gcp.Binding(entry.get("role", ""), m) for m in entry.get("members", [])]
    return bindings


def gcp_workloads(recording: Recording) -> list[claims.GcpWorkload]:
    """Confidential Space VMs (instances or templates with a tee-image-reference) and their identity."""
    found: list[claims.GcpWorkload] = []
    for resource in recording.of_type("gcp:compute/instance:Instance") + recording.of_type(
        "gcp:compute/instanceTemplate:InstanceTemplate"
    ):
        props = unwrapped(resource)
        if "tee-image-reference" not in (props.get("metadata") or {}):
            continue
        account = props.get("serviceAccount")
        account = account[0] if isinstance(account, list) and account else account
        email = dig(account, "email") if isinstance(account, Mapping) else None
        kind = dig(props, "confidentialInstanceConfig.confidentialInstanceType") or "SEV"
        project = props.get("project") or resource.outputs.get("project", "")
        zone = props.get("zone") or f"{props.get('region', 'europe-west4')}-a"
        found.append(
            claims.GcpWorkload(
                project=project,
                project_number=_project_number(project),
                service_account=email or "",
                hwmodel=HWMODEL_BY_CONFIDENTIAL_TYPE.get(kind, f"UNKNOWN_{kind}"),
                zone=zone,
            )
        )
    return found


def judge_gcp(resource: RecordedResource, recording: Recording, settings: Any) -> Decisions:
    providers = gcp_providers(recording)
    bindings = gcp_bindings(recording, resource)
    workloads = gcp_workloads(recording)
    section = settings.collaboration.measurements.confidential_space
    digests = list(section.image_digests) if section is not None else []
    other = claims.GcpWorkload(
        project=claims.OTHER_GCP_PROJECT,
        project_number=claims.OTHER_GCP_PROJECT_NUMBER,
        service_account=f"workload@{claims.OTHER_GCP_PROJECT}.iam.gserviceaccount.com",
        hwmodel=workloads[0].hwmodel if workloads else "GCP_AMD_SEV",
        zone=workloads[0].zone if workloads else "europe-west4-a",
    )

    def run(tokens: Iterable[dict[str, Any]]) -> Iterable[bool]:
        return (gcp.release(providers, bindings, token) for token in tokens)

    unapproved = claims.other_image_digest("unapproved")
    theirs = claims.other_image_digest("other-collaboration")
    return _judge(
        {
            "approved-production": lambda: (
                [False]
                if not digests or not workloads
                else run(claims.confidential_space_token(w, d) for w in workloads for d in digests)
            ),
            "debug-mode": lambda: run(
                claims.confidential_space_token(w, d, debug=True) for w in workloads for d in digests
            ),
            "unapproved-image": lambda: run(claims.confidential_space_token(w, unapproved) for w in workloads),
            "other-collaboration": lambda: run(
                claims.confidential_space_token(other, d) for d in [theirs, *digests]
            ),
            "no-attestation": lambda: [
                gcp.release(providers, bindings, None),
                gcp.direct_release(bindings, [w.service_account for w in workloads]),
            ],
            "operator-repolicies-key": lambda: [bool(operator.gcp_repolicy_paths(resource, recording, _refers_to))],
            "operator-runs-code-on-host": lambda: operator.gcp_operator_host_requests(providers, bindings, workloads),
        }
    )


JUDGES: Final[dict[str, Callable[[RecordedResource, Recording, Any], Decisions]]] = {
    "aws": judge_aws,
    "azure": judge_azure,
    "gcp": judge_gcp,
}


def simulate(recording: Recording, settings: Any) -> list[dict[str, Any]]:
    """Rows `{"party","cloud","key_urn","key_account","case","expected","decision"}` for every party key.

    `key_account` is the AWS account the key lives in (its ARN: a party's own account when its keys
    are declared with its `deployRole` provider), None on the other clouds.

    `settings` is the stack's `StackConfig` (None for a program without ccp config: no rows). A
    party of the config without a recorded data key gets an `approved-production` row whose
    decision is `missing-key`, so the review cannot pass by not declaring a key.
    """
    if settings is None:
        return []
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for resource in recording.resources:
        cloud = KEY_TYPES.get(resource.type)
        if disk.is_confidential_disk_key(resource, key_purpose(resource)):
            # The platform releases it at VM start: judged with the platform's token (disk.py).
            rows += disk.rows(resource, recording, settings, str(key_party(resource) or "shared"))
            continue
        if cloud is None or not is_party_key(resource):
            continue
        party = str(key_party(resource))
        seen.add(party)
        decisions = JUDGES[cloud](resource, recording, settings)
        key_account = _key_account(resource, "") or None if cloud == "aws" else None
        rows += [
            {
                "party": party,
                "cloud": cloud,
                "key_urn": resource.urn,
                "key_account": key_account,
                "case": case,
                "expected": expected(case),
                "decision": decisions.get(case, "error: not judged"),
            }
            for case in cases(cloud)
        ]
    for party in settings.collaboration.parties:
        if party.name not in seen:
            rows.append(
                {
                    "party": party.name,
                    "cloud": party.cloud,
                    "key_urn": None,
                    "key_account": None,
                    "case": "approved-production",
                    "expected": "release",
                    "decision": "missing-key",
                }
            )
    return rows


def mismatches(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [row for row in rows if row["decision"] != row["expected"]]


def markdown_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """The rows as a Markdown table; a decision that differs from the expected one is marked."""
    rows = list(rows)
    if not rows:
        return "_No party keys: nothing to simulate._\n"
    lines = [
        "| party | cloud | case | expected | decision | key | key account |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        mark = "" if row["decision"] == row["expected"] else " **MISMATCH**"
        key = str(row["key_urn"] or "-").rsplit("::", 1)[-1]
        decision = str(row["decision"]).replace("|", "\\|")
        account = row.get("key_account") or "-"
        lines.append(
            f"| {row['party']} | {row['cloud']} | {row['case']} | {row['expected']} | {decision}{mark} | `{key}` "
            f"| {account} |"
        )
    return "\n".join(lines) + "\n"
