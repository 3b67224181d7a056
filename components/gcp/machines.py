"""Which Compute Engine machine types run which confidential computing technology.

Source: Google's Confidential VM release notes
(https://docs.cloud.google.com/confidential-computing/confidential-vm/docs/release-notes, stored copy last
updated 2026-04-08, read 2026-11-30), which announce each machine family per technology:
- AMD SEV: N2D (2020, Rome; 2022, Milan), C2D (2022), C3D (GA 2024-09-20), C4D (GA 2025-06-13);
- AMD SEV-SNP: "supported on N2D machine types with AMD EPYC Milan CPU platforms" (GA 2024-06-18), hence
  `minCpuPlatform = "AMD Milan"`; no other family is announced for SEV-SNP;
- Intel TDX: "c3-standard-* machine types" (GA 2024-09-27; not c3-highcpu/highmem) and a3-highgpu-1g
  (GA 2025-07-31, one H100).
The supported-configurations page (https://cloud.google.com/confidential-computing/confidential-vm/docs/supported-configurations)
holds the same table but was not retrievable here. Confidential Space runs on SEV or TDX only ("Choose one of
the following values: SEV, TDX", https://docs.cloud.google.com/confidential-computing/confidential-space/docs/deploy-workloads);
its GPU (a3) path needs a separate preview image family, which ccp does not use.
A wrong machine type fails at `pulumi up` after minutes; this check fails before anything is declared.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Final, Literal

ConfidentialType = Literal["SEV", "SEV_SNP", "TDX"]

# confidential type -> machine-type patterns (fnmatch) the release notes announce for it.
MACHINE_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "SEV": ("n2d-*", "c2d-*", "c3d-*", "c4d-*"),
    "SEV_SNP": ("n2d-*",),
    "TDX": ("c3-standard-*", "a3-highgpu-1g"),
}
MIN_CPU_PLATFORM: Final[dict[str, str]] = {"SEV_SNP": "AMD Milan"}
# ccp `tee` of a GCP confidential VM host -> Compute Engine confidential type.
TYPE_BY_TEE: Final[dict[str, ConfidentialType]] = {"sev-snp": "SEV_SNP", "tdx": "TDX"}
# Confidential Space: the technologies it offers and, for TDX, the CPU-only machine types its production
# image family runs on.
CONFIDENTIAL_SPACE_MACHINE_TYPES: Final[dict[ConfidentialType, tuple[str, ...]]] = {
    "SEV": MACHINE_TYPES["SEV"],
    "TDX": ("c3-standard-*",),
}
DEFAULT_MACHINE_TYPE: Final[dict[str, str]] = {
    "SEV": "n2d-standard-2",
    "SEV_SNP": "n2d-standard-2",
    "TDX": "c3-standard-4",
}


def machine_family(machine_type: str) -> str:
    return machine_type.split("-", 1)[0].lower()


def _matches(machine_type: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(machine_type.lower(), pattern) for pattern in patterns)


def validate_machine_type(machine_type: str, confidential_type: str) -> None:
    """Refuse a machine type that cannot run `confidential_type`, naming the machine types that can."""
    if confidential_type not in MACHINE_TYPES:
        raise ValueError(f"confidential type {confidential_type!r} is not one of {sorted(MACHINE_TYPES)}")
    if not isinstance(machine_type, str) or "-" not in machine_type:
        raise ValueError(
            f"machine type {machine_type!r} is not a Compute Engine machine type such as "
            f"{DEFAULT_MACHINE_TYPE[confidential_type]!r}"
        )
    allowed = MACHINE_TYPES[confidential_type]
    if not _matches(machine_type, allowed):
        raise ValueError(
            f"machine type {machine_type!r} (family {machine_family(machine_type)}) cannot run "
            f"{confidential_type} confidential VMs: use a {' or '.join(allowed)} machine type, e.g. "
            f"{DEFAULT_MACHINE_TYPE[confidential_type]!r}"
        )


def confidential_space_type(machine_type: str) -> ConfidentialType:
    """The confidential type a Confidential Space VM of this machine type runs (AMD -> SEV, Intel -> TDX)."""
    for confidential_type, patterns in CONFIDENTIAL_SPACE_MACHINE_TYPES.items():
        if _matches(machine_type, patterns):
            return confidential_type
    choices = " or ".join(f"{' / '.join(p)} ({t})" for t, p in CONFIDENTIAL_SPACE_MACHINE_TYPES.items())
    raise ValueError(
        f"machine type {machine_type!r} cannot run Confidential Space: use {choices}, e.g. 'n2d-standard-2'"
    )
