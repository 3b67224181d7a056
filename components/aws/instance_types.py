"""Which EC2 instance types can be a Nitro Enclaves parent, decided before anything is declared.

AWS Nitro Enclaves user guide, "Requirements" (https://docs.aws.amazon.com/enclaves/latest/user/nitro-enclave.html#nitro-enclave-reqs):
the parent is a virtualized Nitro-based instance; "Intel or AMD-based instances with at least 4 vCPUs,
excluding ..." and "AWS Graviton-based instances with at least 2 vCPUs, excluding ..."; bare metal is not
virtualized. The guide is only reachable here through stored copies, checked 2026-11-30:
- the 2024 PDF of the user guide (copy in github.com/jihoo529/ragstone, backend/data/AWS/enclaves-user.md,
  commit fc702f1e): Intel/AMD excluding "C7a, C7i, G4ad, M7a, M7i, M7i-Flex, R7a, R7i, R7iz, T3, T3a, Trn1,
  Trn1n, U-*, VT1"; Graviton excluding "A1, C7gd, C7gn, G5g, Hpc7g, Im4gn, Is4gen, M7g, M7gd, R7g, R7gd, T4g";
- a later quotation of the Intel/AMD line (github.com/sentient-agi/Sentient-Enclaves-Framework, docs/setup.md,
  commit e2ef585b): "excluding c7i.24xlarge, c7i.48xlarge, G4ad, m7i.24xlarge, m7i.48xlarge, M7i-Flex,
  r7i.24xlarge, r7i.48xlarge, R7iz, T3, T3a, Trn1, Trn1n, U-*, VT1" (C7a/M7a/R7a/C7i/M7i/R7i admitted, the
  two largest 7i sizes not).
ccp uses the later Intel/AMD line and the Graviton line (no later Graviton text was found), and requires at
least 4 vCPUs on every architecture (the enclave takes whole cores, the parent keeps 2).

The family list is an allowlist: an unknown family is refused (fail closed) rather than guessed. Families
launched after those copies (the 8th generation: m8g, c8g, r8g, m8i, m8a, ...) are not listed because no
retrieved page says whether the guide excludes them; adding one is a one-line change after checking the
current "Requirements" section.
"""

from __future__ import annotations

import re
from typing import Final, Literal

Architecture = Literal["x86_64", "arm64"]

MIN_VCPUS: Final = 4

_X86_FAMILIES: Final = frozenset(
    """
    m5 m5a m5ad m5d m5dn m5n m5zn m6a m6i m6id m6idn m6in m7a m7i
    c5 c5a c5ad c5d c5n c6a c6i c6id c6in c7a c7i c7i-flex
    r5 r5a r5ad r5b r5d r5dn r5n r6a r6i r6id r6idn r6in r7a r7i
    x2idn x2iedn x2iezn z1d
    """.split()
)
_ARM_FAMILIES: Final = frozenset("m6g m6gd c6g c6gd c6gn c7g r6g r6gd".split())
_GUIDE_EXCLUDES: Final = "the Nitro Enclaves user guide's Requirements exclude this family"
# Families the user guide ("Requirements", copies cited above) excludes by name, refused with that reason so
# nobody re-adds them to the allowlist by mistake. "U-*" (u-6tb1, u7i-12tb, ...) is matched by prefix.
EXCLUDED_FAMILIES: Final[dict[str, str]] = {
    **{f: "burstable T-family instances do not support Nitro Enclaves" for f in ("t3", "t3a", "t4g")},
    **{f: _GUIDE_EXCLUDES for f in ("g4ad", "m7i-flex", "r7iz", "trn1", "trn1n", "vt1")},
    **{
        f: f"{_GUIDE_EXCLUDES} (Graviton)"
        for f in ("a1", "c7gd", "c7gn", "g5g", "hpc7g", "im4gn", "is4gen", "m7g", "m7gd", "r7g", "r7gd")
    },
}
# Single sizes the later Intel/AMD line excludes while admitting the rest of their family.
EXCLUDED_SIZES: Final = frozenset(
    f"{family}.{size}" for family in ("c7i", "m7i", "r7i") for size in ("24xlarge", "48xlarge")
)
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


def exclusion(instance_type: str) -> str | None:
    """Why the user guide refuses this type as a parent (family or size excluded by name), else None."""
    family, _ = _split(instance_type)
    if family in EXCLUDED_FAMILIES:
        return EXCLUDED_FAMILIES[family]
    if family.startswith(("u-", "u7i")):
        return f"{_GUIDE_EXCLUDES} (U-*)"
    if instance_type in EXCLUDED_SIZES:
        return "the Nitro Enclaves user guide's Requirements exclude this size"
    return None


def validate_enclave_instance_type(instance_type: str) -> None:
    """Raise ValueError naming the type unless it can host a Nitro enclave in ccp."""
    family, size = _split(instance_type)
    if size.startswith("metal"):
        raise ValueError(
            f"instance type {instance_type!r} cannot host a Nitro enclave: bare-metal instances do not "
            "support Nitro Enclaves; use a virtualized size such as m6i.xlarge"
        )
    reason = exclusion(instance_type)
    if reason:
        raise ValueError(
            f"instance type {instance_type!r} cannot host a Nitro enclave: {reason} "
            "(https://docs.aws.amazon.com/enclaves/latest/user/nitro-enclave.html#nitro-enclave-reqs); "
            "use e.g. m6i.xlarge or c7g.xlarge"
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
