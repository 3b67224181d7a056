"""GCP Confidential Space: the Workload Identity Federation documents generated from the approved measurements.

Cloud KMS never sees a Confidential Space attestation itself. The workload presents its attestation
token (an OIDC JWT issued by `https://confidentialcomputing.googleapis.com/`) to STS; the workload
identity pool provider accepts it only if the provider's CEL *attribute condition* is true, and maps
`attribute.image_digest` from the token. The party key's decrypter role is then bound to
`principalSet://…/attribute.image_digest/<digest>` for each approved digest. So the condition and the
bindings are the whole key-release policy on GCP, and they are generated here, from one typed input.

Claim facts (Confidential Space "Attestation token claims" reference,
https://cloud.google.com/confidential-computing/confidential-space/docs/reference/token-claims):
- `swname` is `CONFIDENTIAL_SPACE` for hardened *and* debug Confidential Space images, so it does not
  exclude debug images on its own;
- `dbgstat` is `disabled-since-boot` on production images and `enabled` on debug images;
- `submods.confidential_space.support_attributes` contains `STABLE` (and `LATEST`, `USABLE`) on
  supported production images and is absent on debug images;
- `hwmodel` "must be one of" `GCP_AMD_SEV`, `GCP_AMD_SEV_ES`, `GCP_SHIELDED_VM`, `GCP_INTEL_TDX`.
  There is no documented SEV-SNP value for Confidential Space, whose workload VMs are created with
  `--confidential-compute-type` `SEV` or `TDX` only (".../confidential-space/docs/deploy-workloads");
  `GCP_SHIELDED_VM` is not confidential computing and is refused here.
- `google_service_accounts` lists the service accounts attached to the workload VM.

Attribute mapping (".../confidential-space/docs/create-grant-access-confidential-resources"):
`google.subject` may not exceed 127 bytes, so it is built from the digest, project number and
instance id (`gcpcs::<digest>::<number>::<id>`: at most 7+71+2+20+2+20 = 122 bytes), never from
`assertion.sub`, the instance self link, which can exceed the limit.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final, Mapping, Sequence

from enclave_runtime.measurements import ApprovedMeasurements

# Hardware models a Confidential Space token can report that are confidential computing.
CONFIDENTIAL_SPACE_HWMODELS: Final[frozenset[str]] = frozenset(
    {"GCP_AMD_SEV", "GCP_AMD_SEV_ES", "GCP_INTEL_TDX"}
)
DEFAULT_HWMODELS: Final[tuple[str, ...]] = ("GCP_AMD_SEV", "GCP_INTEL_TDX")
# Compute Engine confidential type of a Confidential Space VM -> the hwmodel its token reports.
HWMODEL_BY_CONFIDENTIAL_TYPE: Final[dict[str, str]] = {
    "SEV": "GCP_AMD_SEV",
    "TDX": "GCP_INTEL_TDX",
}

ISSUER: Final = "https://confidentialcomputing.googleapis.com/"
AUDIENCE: Final = "https://sts.googleapis.com"
MAX_CONDITION_LENGTH: Final = 4096  # workload identity pool provider limit
MAX_SUBJECT_BYTES: Final = 127

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# User-managed service accounts: 6-30 character account id in the project's iam domain.
_SERVICE_ACCOUNT = re.compile(
    r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z][a-z0-9-]{4,28}[a-z0-9]\.iam\.gserviceaccount\.com$"
)
# Domains of Google-managed service agents (service-<number>@<domain>.iam.gserviceaccount.com).
_AGENT_DOMAINS = frozenset(
    {
        "gs-project-accounts",
        "compute-system",
        "container-engine-robot",
        "cloudservices",
        "serverless-robot-prod",
    }
)
_PROJECT_NUMBER = re.compile(r"^[1-9][0-9]{0,19}$")
_POOL_ID = re.compile(r"^[a-z0-9-]{4,32}$")


def cel_string(value: str) -> str:
    """A CEL single-quoted string literal for `value` (backslash and quote escaped, no raw newlines).

    Every value is also validated against its own strict pattern before it gets here; escaping is
    the second line of defence so that no value can ever close the literal and add a clause.
    """
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def _cel_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(cel_string(v) for v in values) + "]"


def check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise ValueError(
            f"{digest!r} is not an image digest: expected 'sha256:' followed by 64 lowercase hex characters"
        )
    return digest


def check_service_account(email: str) -> str:
    domain = email.partition("@")[2].split(".", 1)[0] if isinstance(email, str) else ""
    if (
        not isinstance(email, str)
        or not _SERVICE_ACCOUNT.fullmatch(email)
        or domain in _AGENT_DOMAINS
        or domain.startswith("gcp-sa-")
    ):
        raise ValueError(
            f"{email!r} is not a user-managed service account email "
            "(<6-30 char id>@<project>.iam.gserviceaccount.com): the condition must name the "
            "workload's dedicated service account, never a default or Google-managed one"
        )
    return email


def approved_digests(measurements: ApprovedMeasurements) -> list[str]:
    """The approved Confidential Space image digests, sorted and de-duplicated; fail closed if none."""
    section = measurements.confidential_space
    if section is None or not section.image_digests:
        raise ValueError(
            "measurements.confidentialSpace is absent: no Confidential Space workload is approved, "
            "so no attribute condition (and no key grant) may be generated"
        )
    return sorted({check_digest(d) for d in section.image_digests})


def attribute_condition(
    measurements: ApprovedMeasurements,
    *,
    workload_service_account: str,
    hardware_models: Sequence[str] = DEFAULT_HWMODELS,
) -> str:
    """The strict CEL attribute condition of the Confidential Space workload identity provider.

    Every clause is necessary: `swname` alone admits debug images, `dbgstat` and the `STABLE`
    support attribute exclude them, `secboot` requires measured secure boot, the digest list pins
    the approved images, and the service account pins the operator's VM identity.
    """
    digests = approved_digests(measurements)
    account = check_service_account(workload_service_account)
    models = sorted(set(hardware_models))
    if not models:
        raise ValueError("hardware_models is empty: name at least one confidential hardware model")
    unknown = [m for m in models if m not in CONFIDENTIAL_SPACE_HWMODELS]
    if unknown:
        raise ValueError(
            f"hardware model(s) {unknown} are not confidential hardware models a Confidential Space "
            f"token reports; use {sorted(CONFIDENTIAL_SPACE_HWMODELS)}"
        )
    condition = " && ".join(
        [
            "assertion.swname == 'CONFIDENTIAL_SPACE'",
            "assertion.dbgstat == 'disabled-since-boot'",
            "'STABLE' in assertion.submods.confidential_space.support_attributes",
            f"assertion.hwmodel in {_cel_list(models)}",
            "assertion.secboot == true",
            f"assertion.submods.container.image_digest in {_cel_list(digests)}",
            f"{cel_string(account)} in assertion.google_service_accounts",
        ]
    )
    if len(condition) > MAX_CONDITION_LENGTH:
        raise ValueError(
            f"the attribute condition is {len(condition)} characters, over the provider limit of "
            f"{MAX_CONDITION_LENGTH}: approve fewer image digests at once"
        )
    return condition


def attribute_mapping() -> dict[str, str]:
    """Provider attribute mapping: a bounded subject and the image digest used by principalSets."""
    return {
        "google.subject": (
            "'gcpcs::' + assertion.submods.container.image_digest + '::' + "
            "assertion.submods.gce.project_number + '::' + assertion.submods.gce.instance_id"
        ),
        "attribute.image_digest": "assertion.submods.container.image_digest",
    }


def digest_principal_set(project_number: str, pool_id: str, digest: str) -> str:
    """The IAM principal set of every workload identity whose token carries `digest`.

    Pools always live in `locations/global`; the path takes the project *number*, not its id.
    """
    if not isinstance(project_number, str) or not _PROJECT_NUMBER.fullmatch(project_number):
        raise ValueError(f"{project_number!r} is not a GCP project number (digits only)")
    if not isinstance(pool_id, str) or not _POOL_ID.fullmatch(pool_id):
        raise ValueError(f"{pool_id!r} is not a workload identity pool id (4-32 of a-z, 0-9, -)")
    check_digest(digest)
    return (
        f"principalSet://iam.googleapis.com/projects/{project_number}/locations/global/"
        f"workloadIdentityPools/{pool_id}/attribute.image_digest/{digest}"
    )


@functools.lru_cache(maxsize=64)
def compile_cel(expression: str) -> Any:
    """The compiled CEL program (raises on a parse error); cached: reviews judge one condition many times."""
    import celpy

    environment = celpy.Environment()
    return environment.program(environment.compile(expression))


def evaluate_cel(expression: str, assertion: Mapping[str, Any]) -> Any:
    """Evaluate a provider CEL expression over a decoded token's claims (raises on any CEL error)."""
    from celpy.adapter import json_to_cel

    result = compile_cel(expression).evaluate({"assertion": json_to_cel(dict(assertion))})
    if isinstance(result, Exception):  # celpy may return, rather than raise, an evaluation error
        raise result
    return result


def evaluate_condition(condition: str, assertion: Mapping[str, Any]) -> bool:
    """Would STS accept a token with these claims? Fail closed: a missing claim or any error is False."""
    try:
        result = evaluate_cel(condition, assertion)
    except Exception:  # noqa: BLE001 - every failure to evaluate means "not accepted"
        return False
    from celpy import celtypes

    if isinstance(result, celtypes.BoolType):
        return bool(result)
    return result is True
