"""Which Compute Engine machine families run which confidential computing technology.

Sources: Compute Engine `ConfidentialInstanceConfig.confidentialInstanceType` (SEV, SEV_SNP, TDX) and
the Confidential VM supported configurations
(https://cloud.google.com/confidential-computing/confidential-vm/docs/supported-configurations):
AMD SEV on N2D and C2D, AMD SEV-SNP on N2D only (with `minCpuPlatform = "AMD Milan"`; Google does not
list C2D for SEV-SNP, which was wrongly mapped here before), Intel TDX on C3.
Confidential Space workload VMs use SEV or TDX only
(https://cloud.google.com/confidential-computing/confidential-space/docs/deploy-workloads).
A wrong family fails at `pulumi up` after minutes; this check fails before anything is declared.
"""

from __future__ import annotations

from typing import Final, Literal

ConfidentialType = Literal["SEV", "SEV_SNP", "TDX"]

FAMILIES: Final[dict[str, frozenset[str]]] = {
    "SEV": frozenset({"n2d", "c2d"}),
    "SEV_SNP": frozenset({"n2d"}),  # not c2d: see the supported configurations (source above)
    "TDX": frozenset({"c3"}),
}
MIN_CPU_PLATFORM: Final[dict[str, str]] = {"SEV_SNP": "AMD Milan"}
# ccp `tee` of a GCP confidential VM host -> Compute Engine confidential type.
TYPE_BY_TEE: Final[dict[str, ConfidentialType]] = {"sev-snp": "SEV_SNP", "tdx": "TDX"}
CONFIDENTIAL_SPACE_TYPES: Final[tuple[ConfidentialType, ...]] = ("SEV", "TDX")
DEFAULT_MACHINE_TYPE: Final[dict[str, str]] = {
    "SEV": "n2d-standard-2",
    "SEV_SNP": "n2d-standard-2",
    "TDX": "c3-standard-4",
}


def machine_family(machine_type: str) -> str:
    return machine_type.split("-", 1)[0].lower()


def validate_machine_type(machine_type: str, confidential_type: str) -> None:
    """Refuse a machine type whose family cannot run `confidential_type`, naming the families that can."""
    if confidential_type not in FAMILIES:
        raise ValueError(f"confidential type {confidential_type!r} is not one of {sorted(FAMILIES)}")
    if not isinstance(machine_type, str) or "-" not in machine_type:
        raise ValueError(
            f"machine type {machine_type!r} is not a Compute Engine machine type such as "
            f"{DEFAULT_MACHINE_TYPE[confidential_type]!r}"
        )
    family = machine_family(machine_type)
    allowed = FAMILIES[confidential_type]
    if family not in allowed:
        raise ValueError(
            f"machine type {machine_type!r} (family {family}) cannot run {confidential_type} "
            f"confidential VMs: use a {' or '.join(sorted(allowed))} machine type, e.g. "
            f"{DEFAULT_MACHINE_TYPE[confidential_type]!r}"
        )


def confidential_space_type(machine_type: str) -> ConfidentialType:
    """The confidential type a Confidential Space VM of this family runs (AMD -> SEV, Intel -> TDX)."""
    for confidential_type in CONFIDENTIAL_SPACE_TYPES:
        if machine_family(machine_type) in FAMILIES[confidential_type]:
            return confidential_type
    raise ValueError(
        f"machine type {machine_type!r} cannot run Confidential Space: use an n2d or c2d (AMD SEV) "
        "or c3 (Intel TDX) machine type, e.g. 'n2d-standard-2'"
    )
