"""Which collector this machine supports, from the device nodes and files its TEE exposes.

Checked in order, hardware-rooted first; the first match wins:
  /dev/nsm                                  → Nitro Secure Module
  configfs tsm/report + /dev/sev-guest or /dev/tdx_guest → configfs-tsm (SNP or TDX)
  /dev/sev-guest                            → SNP_GET_REPORT ioctl (kernels before 6.7)
  /dev/tpmrm0 + Azure HCL report NV index   → Azure vTPM (tpm2-tools)
  the launcher's token file or socket       → Confidential Space token
configfs names its provider only inside a report instance, so the guest driver's device node, which
the same driver creates, stands in for it; the collector checks `provider` when it runs. Every path
is under `root`, so tests lay out a fake machine in a temporary directory.
"""

from __future__ import annotations

from pathlib import Path

from . import azure_vtpm
from .base import Collector, EvidenceError
from .confidential_space import SOCKET, TOKEN_FILE, ConfidentialSpace
from .configfs_tsm import ConfigfsTsm
from .nitro_nsm import NitroNsm
from .sev_guest import SevGuest



def detect(root: Path | str = "/", *, audience: str | None = None) -> Collector:
    """The collector for this machine; `audience` is for Confidential Space tokens that bind report data.

    Raises EvidenceError listing everything looked for when the machine offers none of them.
    """
    base = Path(root)
    nsm = base / "dev/nsm"
    reports = base / "sys/kernel/config/tsm/report"
    sev_guest = base / "dev/sev-guest"
    tdx_guest = base / "dev/tdx_guest"
    tpm = base / "dev/tpmrm0"
    launcher = base / "run/container_launcher"
    if nsm.exists():
        return NitroNsm(nsm)
    if reports.is_dir() and (sev_guest.exists() or tdx_guest.exists()):
        return ConfigfsTsm(reports)
    if sev_guest.exists():
        return SevGuest(sev_guest)
    vtpm_note = ""
    if tpm.exists():
        collector, vtpm_note = _azure_vtpm(tpm)
        if collector is not None:
            return collector
    if (launcher / TOKEN_FILE).exists() or (launcher / SOCKET).exists():
        return ConfidentialSpace(audience, launcher=launcher)
    tdx_note = (
        f"; {tdx_guest} exists but TDX quotes need configfs-tsm (Linux 6.7+)" if tdx_guest.exists() else ""
    )
    raise EvidenceError(
        f"no TEE evidence source under {base}: looked for {nsm} (Nitro), {reports} with {sev_guest} or "
        f"{tdx_guest} (configfs-tsm), {sev_guest} (SNP ioctl), {tpm} with the Azure HCL report NV index "
        f"(vTPM), {launcher / TOKEN_FILE} or {launcher / SOCKET} (Confidential Space){vtpm_note}{tdx_note}. "
        "Run inside a confidential VM or enclave, with these devices passed into the container"
    )


def _azure_vtpm(tpm: Path) -> tuple[Collector | None, str]:
    """The Azure vTPM collector if the TPM holds Azure's HCL report NV index (any TPM has /dev/tpmrm0)."""
    tcti = f"device:{tpm}"
    try:
        azure_vtpm.probe(tcti)
    except EvidenceError as exc:
        return (
            None,
            f"; {tpm} exists but the Azure HCL report NV index {azure_vtpm.HCL_REPORT_NV_INDEX} did not answer ({exc})",
        )
    return azure_vtpm.AzureVtpmCollector(tcti=tcti), ""
