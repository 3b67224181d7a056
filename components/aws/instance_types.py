"""Which EC2 instance types can be a Nitro Enclaves parent, decided before anything is declared.

AWS Nitro Enclaves user guide, "Requirements" (https://docs.aws.amazon.com/enclaves/latest/user/nitro-enclave.html#nitro-enclave-reqs):
the parent must be a Nitro-based instance with enough vCPUs to give the enclave whole cores and keep
some for itself (with hyper-threading, at least 2 vCPUs stay with the parent); burstable (T) and
bare-metal instances are not supported. ccp requires at least 4 vCPUs on every architecture.

The family list is an allowlist of current Nitro-based general purpose, compute and memory optimised
families: an unknown family is refused (fail closed) rather than guessed; adding one is a one-line
change after checking it in the EC2 instance-type documentation.
"""

from __future__ import annotations

import re
from typing import Final, Literal

Architecture = Literal["x86_64", "arm64"]

MIN_VCPUS: Final = 4

_X86_FAMILIES: Final = frozenset(
    """
    m5 m5a m5ad m5d m5dn m5n m5zn m6a m6i m6id m6idn m6in m7a m7i m7i-flex m8a m8i
    c5 c5a c5ad c5d c5n c6a c6i c6id c6in c7a c7i c7i-flex c8a c8i
    r5 r5a r5ad r5b r5d r5dn r5n r6a r6i r6id r6idn r6in r7a r7i r7iz r8a r8i
    x2idn x2iedn x2iezn z1d
    """.split()
)
# Graviton: the user guide admits Graviton-based instances "excluding A1, C7gd, C7gn, Hpc7g, M7gd, R7gd,
# G5g, Im4gn, Is4gen, and T4g" (source above); C7gd/C7gn/M7gd/R7gd were wrongly listed here before.
_ARM_FAMILIES: Final = frozenset(
    "m6g m6gd m7g m8g c6g c6gd c6gn c7g c8g r6g r6gd r7g r8g".split()
)
# Families the Nitro Enclaves user guide ("Requirements", source above) excludes by name: refused
# with that reason, so nobody re-adds them to the allowlist by mistake.
EXCLUDED_FAMILIES: Final[dict[str, str]] = {
    **{f: "burstable T-family instances do not support Nitro Enclaves" for f in ("t3", "t3a", "t4g")},
    **{
        f: "the Nitro Enclaves user guide excludes this Graviton family"
        for f in ("a1", "c7gd", "c7gn", "hpc7g", "m7gd", "r7gd", "g5g", "im4gn", "is4gen")
    },
}
# Memory per vCPU (GiB) of each allowlisted family, from the EC2 instance-type pages
# (https://aws.amazon.com/ec2/instance-types/): general purpose 4, compute optimised 2, memory
# optimised 8, x2idn 16, x2iedn/x2iezn 32. Where a family's sizes carry a little more (c5n: 2.625),
# the lower figure is used: the memory check may refuse slightly early, never too late.
_GIB_PER_VCPU: Final[dict[str, int]] = {
    **{f: 4 for f in _X86_FAMILIES | _ARM_FAMILIES if f.startswith("m")},
    **{f: 2 for f in _X86_FAMILIES | _ARM_FAMILIES if f.startswith("c")},
    **{f: 8 for f in _X86_FAMILIES | _ARM_FAMILIES if f.startswith("r")},
    "z1d": 8,
    "x2idn": 16,
    "x2iedn": 32,
    "x2iezn": 32,
}
# vCPUs of the `.large` step; every `Nxlarge` has 4*N vCPUs on these families.
_SIZE = re.compile(r"^(?:(\d+)?xlarge|large|medium|small|micro|nano|metal(?:-\d+xl)?)$")


def _split(instance_type: str) -> tuple[str, str]:
    family, dot, size = instance_type.partition(".")
    if not dot or not family or not size:
        raise ValueError(
            f"instance type {instance_type!r} is not an EC2 instance type: expected '<family>.<size>', "
            "e.g. 'm6i.xlarge'"
        )
    return family, size


def vcpus(instance_type: str) -> int:
    """vCPUs of a sized (non-metal) type of the allowlisted families: large=2, xlarge=4, Nxlarge=4N."""
    _, size = _split(instance_type)
    match = _SIZE.match(size)
    if not match or size.startswith("metal"):
        raise ValueError(f"instance type {instance_type!r}: unknown size {size!r}")
    if size == "large":
        return 2
    if size.endswith("xlarge"):
        return 4 * int(match.group(1) or 1)
    return 1


def memory_mib(instance_type: str) -> int:
    """Memory (MiB) of a sized type of the allowlisted families (vCPUs x the family's GiB per vCPU)."""
    family, _ = _split(instance_type)
    if family not in _GIB_PER_VCPU:
        raise ValueError(f"instance type {instance_type!r}: ccp does not know the memory of family {family!r}")
    return vcpus(instance_type) * _GIB_PER_VCPU[family] * 1024


def architecture(instance_type: str) -> Architecture:
    family, _ = _split(instance_type)
    return "arm64" if family in _ARM_FAMILIES else "x86_64"


def validate_enclave_instance_type(instance_type: str) -> None:
    """Raise ValueError naming the type unless it can host a Nitro enclave in ccp."""
    family, size = _split(instance_type)
    if family.startswith("t"):
        raise ValueError(
            f"instance type {instance_type!r} cannot host a Nitro enclave: burstable T-family instances "
            "do not support Nitro Enclaves; use e.g. m6i.xlarge"
        )
    if size.startswith("metal"):
        raise ValueError(
            f"instance type {instance_type!r} cannot host a Nitro enclave: bare-metal instances do not "
            "support Nitro Enclaves; use a virtualized size such as m6i.xlarge"
        )
    if family in EXCLUDED_FAMILIES:
        raise ValueError(
            f"instance type {instance_type!r} cannot host a Nitro enclave: {EXCLUDED_FAMILIES[family]} "
            "(https://docs.aws.amazon.com/enclaves/latest/user/nitro-enclave.html#nitro-enclave-reqs); "
            "use e.g. m6i.xlarge or m7g.xlarge"
        )
    if family not in _X86_FAMILIES | _ARM_FAMILIES:
        raise ValueError(
            f"instance type {instance_type!r} is not in ccp's list of Nitro-based families that support "
            "Nitro Enclaves (components/aws/instance_types.py); use e.g. m6i.xlarge, c6i.xlarge or "
            "r6i.xlarge"
        )
    count = vcpus(instance_type)
    if count < MIN_VCPUS:
        raise ValueError(
            f"instance type {instance_type!r} has {count} vCPUs: a Nitro enclave parent needs at least "
            f"{MIN_VCPUS} (the enclave takes whole cores and the parent keeps 2); use "
            f"{family}.xlarge or larger"
        )
