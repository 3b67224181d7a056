"""Machine families per confidential type, and the pinned workload image check."""

from __future__ import annotations

import pytest

from components.gcp.common import bounded, check_member, service_account_id
from components.gcp.compute import pinned_image
from components.gcp.machines import confidential_space_type, validate_machine_type

DIGEST = "sha256:" + "a0e2148f2794b7790dc9c775028636b025312d42873cff16847ef9ec0e42af08"


@pytest.mark.parametrize(
    ("machine_type", "confidential_type"),
    [
        ("n2d-standard-4", "SEV"),
        ("c2d-highmem-8", "SEV"),
        ("c3d-standard-8", "SEV"),
        ("c4d-standard-8", "SEV"),
        ("n2d-standard-2", "SEV_SNP"),
        ("c3-standard-4", "TDX"),
        ("a3-highgpu-1g", "TDX"),
    ],
)
def test_supported_machine_types(machine_type: str, confidential_type: str) -> None:
    validate_machine_type(machine_type, confidential_type)


@pytest.mark.parametrize(
    ("machine_type", "confidential_type", "message"),
    [
        (
            "c3-standard-4",
            "SEV",
            r"'c3-standard-4' \(family c3\) cannot run SEV confidential VMs: use a n2d-\* or c2d-\* or c3d-\* or "
            r"c4d-\* machine type",
        ),
        ("n2-standard-4", "SEV_SNP", r"family n2\) cannot run SEV_SNP confidential VMs: use a n2d-\* machine type"),
        ("n2d-standard-4", "TDX", r"family n2d\) cannot run TDX confidential VMs: use a c3-standard-\* or a3-highgpu-1g machine type"),
        ("e2-medium", "TDX", r"machine type, e.g. 'c3-standard-4'"),
        ("n2d", "SEV", r"not a Compute Engine machine type"),
        ("n2d-standard-4", "SGX", r"confidential type 'SGX' is not one of"),
    ],
)
def test_unsupported_machine_types(machine_type: str, confidential_type: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_machine_type(machine_type, confidential_type)


def test_confidential_space_type() -> None:
    assert confidential_space_type("n2d-standard-4") == "SEV"
    assert confidential_space_type("c3-standard-8") == "TDX"
    assert confidential_space_type("c3d-standard-8") == "SEV"
    with pytest.raises(ValueError, match="cannot run Confidential Space"):
        confidential_space_type("a3-highgpu-1g")  # GPU path: a separate preview image family
    with pytest.raises(ValueError, match="cannot run Confidential Space"):
        confidential_space_type("e2-standard-4")


def test_pinned_image_accepts_an_approved_digest() -> None:
    image = f"europe-docker.pkg.dev/ccp-dev/workloads/fl-trainer@{DIGEST}"
    assert pinned_image(image, [DIGEST]) == image


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (None, "not pinned by digest"),
        ("europe-docker.pkg.dev/ccp-dev/workloads/fl-trainer:latest", "not pinned by digest"),
        ("europe-docker.pkg.dev/ccp-dev/workloads/fl-trainer@sha256:ABC", "64 lowercase hex"),
        (f"europe-docker.pkg.dev/ccp-dev/workloads/fl-trainer@{DIGEST}\n", "64 lowercase hex"),
        ("europe-docker.pkg.dev/ccp-dev/workloads/fl-trainer@sha256:" + "1" * 64, "is not in measurements"),
    ],
)
def test_pinned_image_rejects(image: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pinned_image(image, [DIGEST])


def test_names_stay_within_limits() -> None:
    assert bounded("short", 30) == "short"
    long = bounded("ccp-" + "x" * 40, 30)
    assert len(long) == 30 and long == bounded("ccp-" + "x" * 40, 30)
    assert service_account_id("ccp-cs", "dev-demo") == "ccp-cs-dev-demo"
    assert len(service_account_id("ccp-cs", "a-very-long-collaboration-name-here")) == 30


@pytest.mark.parametrize("member", ["allUsers", "allAuthenticatedUsers", "alice@example.com", "user:"])
def test_members_name_one_principal(member: str) -> None:
    with pytest.raises(ValueError, match="IAM member"):
        check_member(member)


# Item 4 (issue 14): what Google's Confidential VM release notes
# (https://docs.cloud.google.com/confidential-computing/confidential-vm/docs/release-notes, cited in
# components/gcp/machines.py) do not announce for a technology is refused, one case per excluded family.
@pytest.mark.parametrize(
    ("machine_type", "confidential_type"),
    [
        ("c2d-standard-4", "SEV_SNP"),  # SEV-SNP: N2D (Milan) only; C2D runs SEV, not SEV-SNP
        ("c3d-standard-4", "SEV_SNP"),
        ("c4d-standard-4", "SEV_SNP"),
        ("c3-standard-4", "SEV_SNP"),
        ("c3-standard-4", "SEV"),  # Intel: TDX only
        ("c3-highcpu-4", "TDX"),  # TDX: c3-standard-* only
        ("c3-highmem-4", "TDX"),
        ("a3-highgpu-8g", "TDX"),  # TDX GPU: a3-highgpu-1g only
        ("n2d-standard-4", "TDX"),  # AMD: SEV/SEV-SNP only
        ("c2d-standard-4", "TDX"),
        ("n2-standard-4", "SEV"),  # Intel N2: no confidential computing
        ("e2-standard-4", "SEV"),
    ],
)
def test_excluded_family_is_refused(machine_type: str, confidential_type: str) -> None:
    with pytest.raises(ValueError, match="cannot run"):
        validate_machine_type(machine_type, confidential_type)
