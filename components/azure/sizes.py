"""Which Azure VM sizes provide which TEE, so that a wrong size fails before anything is declared.

A confidential VM on a non-confidential size is refused by ARM only at deployment time, and an SGX
workload on a size without EPC never attests; both are config errors ccp reports up front.
Families, checked 2026-11-30 against Microsoft's documentation source (github.com/MicrosoftDocs/azure-docs):
- AMD SEV-SNP confidential VMs: DCasv5, DCadsv5, ECasv5, ECadsv5 (e.g. Standard_DC4as_v5), and
- Intel TDX confidential VMs: DCesv5, DCedsv5, ECesv5, ECedsv5 (e.g. Standard_DC4es_v5; the `d` variants add a
  local temporary disk): the "Sizes" table of "Azure Confidential VM options"
  (https://learn.microsoft.com/azure/confidential-computing/virtual-machine-options; source
  articles/confidential-computing/virtual-machine-options.md, commit 1339b753, ms.date 2023-11-15), which also
  lists NCCadsH100v5 (SEV-SNP with a confidential GPU), not used by ccp. Later families (e.g. v6) are not in
  that copy and are refused until checked;
- Intel SGX enclaves: DCsv2 (Standard_DC1s_v2, DC2s_v2, DC4s_v2 and DC8_v2, without the `s`), DCsv3 and
  DCdsv3 (DC1..DC48): the vmSize list of "Solutions on Azure for Intel SGX"
  (https://learn.microsoft.com/azure/confidential-computing/virtual-machine-solutions-sgx; source
  articles/confidential-computing/virtual-machine-solutions-sgx.md, commit 03e5750a).
Look-alike families that are not confidential VMs are refused with their reason (`EXCLUDED_FAMILIES`).
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
        "DCedsv5": re.compile(r"^Standard_DC\d+eds_v5$"),
        "ECesv5": re.compile(r"^Standard_EC\d+es_v5$"),
        "ECedsv5": re.compile(r"^Standard_EC\d+eds_v5$"),
    },
    "sgx": {
        "DCsv2": re.compile(r"^Standard_DC(?:1s|2s|4s|8)_v2$"),
        "DCsv3": re.compile(r"^Standard_DC\d+s_v3$"),
        "DCdsv3": re.compile(r"^Standard_DC\d+ds_v3$"),
    },
}
# Families a size name can be mistaken for a confidential one by: family label -> (pattern, reason).
EXCLUDED_FAMILIES: Final[dict[str, tuple[re.Pattern[str], str]]] = {
    "DCas_cc_v5/ECas_cc_v5": (
        re.compile(r"^Standard_(DC|EC)\d+ad?s_cc_v5$"),
        "it is a confidential-containers host size (AKS pod sandboxing with Kata, each pod in its own "
        "SEV-SNP utility VM), not a confidential VM the guest owns",
    ),
    "Dasv5/Dadsv5/Easv5/Eadsv5": (
        re.compile(r"^Standard_(D|E)\d+ad?s_v5$"),
        "it is a general-purpose AMD size without SEV-SNP (the confidential AMD sizes are DC/EC..as_v5)",
    ),
    "Dsv5/Ddsv5/Esv5/Edsv5": (
        re.compile(r"^Standard_(D|E)\d+d?s_v5$"),
        "it is a general-purpose Intel size without TDX (the confidential Intel sizes are DC/EC..es_v5)",
    ),
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
        for label, (pattern, reason) in EXCLUDED_FAMILIES.items():
            if isinstance(size, str) and pattern.match(size):
                raise ValueError(
                    f"VM size {size!r} does not provide {tee}: {reason} ({label}); use a size of the "
                    f"{families} families (e.g. {EXAMPLE_SIZE[tee]})"
                )
        raise ValueError(
            f"VM size {size!r} does not provide {tee}: use a size of the {families} families "
            f"(e.g. {EXAMPLE_SIZE[tee]})"
        )
