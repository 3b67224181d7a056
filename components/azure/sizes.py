"""Which Azure VM sizes provide which TEE, so that a wrong size fails before anything is declared.

A confidential VM on a non-confidential size is refused by ARM only at deployment time, and an SGX
workload on a size without EPC never attests; both are config errors ccp reports up front.
Families (https://learn.microsoft.com/azure/confidential-computing/virtual-machine-options):
- AMD SEV-SNP confidential VMs: DCasv5, ECasv5, DCadsv5, ECadsv5 (e.g. Standard_DC4as_v5);
- Intel TDX confidential VMs: DCesv5, ECesv5 (e.g. Standard_DC4es_v5);
- Intel SGX enclaves: DCsv2, DCsv3, DCdsv3 (e.g. Standard_DC2s_v3).
"""

from __future__ import annotations

import re
from typing import Final

# tee -> {family label: size-name pattern}
CVM_FAMILIES: Final[dict[str, dict[str, re.Pattern[str]]]] = {
    "sev-snp": {
        "DCasv5": re.compile(r"^Standard_DC\d+as_v5$"),
        "ECasv5": re.compile(r"^Standard_EC\d+as_v5$"),
        "DCadsv5": re.compile(r"^Standard_DC\d+ads_v5$"),
        "ECadsv5": re.compile(r"^Standard_EC\d+ads_v5$"),
    },
    "tdx": {
        "DCesv5": re.compile(r"^Standard_DC\d+es_v5$"),
        "ECesv5": re.compile(r"^Standard_EC\d+es_v5$"),
    },
    "sgx": {
        "DCsv2": re.compile(r"^Standard_DC\d+s_v2$"),
        "DCsv3": re.compile(r"^Standard_DC\d+s_v3$"),
        "DCdsv3": re.compile(r"^Standard_DC\d+ds_v3$"),
    },
}
EXAMPLE_SIZE: Final[dict[str, str]] = {
    "sev-snp": "Standard_DC4as_v5",
    "tdx": "Standard_DC4es_v5",
    "sgx": "Standard_DC4s_v3",
}


def size_family(size: str, tee: str) -> str | None:
    """The family label of `size` for `tee`, or None when the size does not provide that TEE."""
    for family, pattern in CVM_FAMILIES.get(tee, {}).items():
        if pattern.match(size):
            return family
    return None


def validate_cvm_size(size: str, tee: str) -> None:
    """Raise ValueError naming the size and the accepted families unless `size` provides `tee`."""
    if tee not in CVM_FAMILIES:
        raise ValueError(
            f"tee {tee!r} has no Azure VM sizes: Azure runs {', '.join(sorted(CVM_FAMILIES))}"
        )
    if not isinstance(size, str) or size_family(size, tee) is None:
        families = ", ".join(CVM_FAMILIES[tee])
        raise ValueError(
            f"VM size {size!r} does not provide {tee}: use a size of the {families} families "
            f"(e.g. {EXAMPLE_SIZE[tee]})"
        )
