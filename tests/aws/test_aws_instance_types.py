"""Which instance types may host a Nitro enclave, and the allocator sizes derived from them."""

from __future__ import annotations

import pytest

from components.aws.enclave_host import allocator_yaml, enclave_resources
from components.aws.instance_types import architecture, validate_enclave_instance_type, vcpus


@pytest.mark.parametrize("instance_type", ["m6i.xlarge", "c6i.2xlarge", "r5.4xlarge", "m7g.xlarge", "m5.24xlarge"])
def test_accepted(instance_type: str) -> None:
    validate_enclave_instance_type(instance_type)


@pytest.mark.parametrize(
    ("instance_type", "message"),
    [
        ("t3.large", r"'t3.large' cannot host a Nitro enclave: burstable T-family"),
        ("t3a.2xlarge", r"'t3a.2xlarge' cannot host a Nitro enclave: burstable"),
        ("m5.metal", r"'m5.metal' cannot host a Nitro enclave: bare-metal"),
        ("m5.large", r"'m5.large' has 2 vCPUs: a Nitro enclave parent needs at least 4.*use m5.xlarge"),
        ("m4.xlarge", r"'m4.xlarge' is not in ccp's list of Nitro-based families"),
        ("m6i", r"'m6i' is not an EC2 instance type"),
    ],
)
def test_refused_with_the_type_named(instance_type: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_enclave_instance_type(instance_type)


def test_vcpus_and_architecture() -> None:
    assert vcpus("m6i.xlarge") == 4
    assert vcpus("m6i.8xlarge") == 32
    assert architecture("m6i.xlarge") == "x86_64"
    assert architecture("c7g.2xlarge") == "arm64"


def test_enclave_resources_leave_the_parent_two_vcpus() -> None:
    assert enclave_resources("m6i.xlarge", None, 4096) == (2, 4096)
    assert enclave_resources("m6i.2xlarge", None, 8192) == (6, 8192)
    with pytest.raises(ValueError, match="may take 2 to 2 of them"):
        enclave_resources("m6i.xlarge", 4, 4096)
    with pytest.raises(ValueError, match="must be even"):
        enclave_resources("m6i.2xlarge", 3, 4096)


def test_allocator_yaml() -> None:
    assert allocator_yaml(2, 4096) == "---\nmemory_mib: 4096\ncpu_count: 2\n"


# Item 4 (issue 14): every family the Nitro Enclaves user guide's "Requirements"
# (https://docs.aws.amazon.com/enclaves/latest/user/nitro-enclave.html#nitro-enclave-reqs) excludes is
# refused by name, at a size that would otherwise qualify.
@pytest.mark.parametrize(
    "family", ["t3", "t3a", "t4g", "a1", "c7gd", "c7gn", "hpc7g", "m7gd", "r7gd", "g5g", "im4gn", "is4gen"]
)
def test_family_excluded_by_the_user_guide_is_refused(family: str) -> None:
    from components.aws.instance_types import EXCLUDED_FAMILIES, _ARM_FAMILIES, _X86_FAMILIES

    assert family in EXCLUDED_FAMILIES and family not in _ARM_FAMILIES | _X86_FAMILIES
    with pytest.raises(ValueError, match=f"'{family}.2xlarge' cannot host a Nitro enclave"):
        validate_enclave_instance_type(f"{family}.2xlarge")

