"""Azure confidential-VM vTPM evidence, collected with tpm2-tools from the guest's vTPM.

What an Azure SEV-SNP CVM offers (Microsoft "Guest attestation design detail", Azure/azure-cvm-tooling):
the paravisor keeps the HCL report (SNP report + runtime data with the AK) in NV index 0x01400001 and
regenerates it with the 64 bytes written to NV index 0x01400002 as `user-data`; the AK it vouches for is
persistent at 0x81000003. The evidence is the quote of PCRs sha256:0-23 with the caller's nonce plus
that report, in the JSON `enclave_runtime.attest.azure_vtpm` verifies (trustee's az-snp-vtpm format).

tpm2-tools rather than a TSS binding: tpm2-pytss has no wheel here, and the tools are what Azure's own
guides use. The TCTI is a parameter so the same code runs against the device and against swtpm.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .base import Evidence, EvidenceError, fixed_report_data

HCL_REPORT_NV_INDEX = "0x01400001"
USER_DATA_NV_INDEX = "0x01400002"
AK_HANDLE = "0x81000003"
PCR_SELECTION = "sha256:" + ",".join(str(i) for i in range(24))
DEFAULT_TCTI = "device:/dev/tpmrm0"
NONCE_MAX = 64  # TPM2B_DATA: a quote's extraData holds at most one SHA-512 digest


def collect_evidence(
    nonce: bytes, *, user_data: bytes | None = None, vcek_pem: str | None = None, tcti: str = DEFAULT_TCTI
) -> bytes:
    """The azure-vtpm evidence JSON: HCL report, quote over sha256:0-23 with extraData `nonce`, PCR values.

    `user_data` (up to 64 bytes, zero-padded) is first written to NV 0x01400002 so the paravisor puts it
    in the SNP-signed runtime data. `vcek_pem` is the VCEK the host serves (Azure IMDS/THIM:
    `http://169.254.169.254/metadata/THIM/amd/certification`, field `vcekCert`); without it the verifier
    needs the VCEK among its collateral.
    """
    if len(nonce) > NONCE_MAX:
        raise EvidenceError(f"quote nonce is {len(nonce)} bytes; a TPM quote's extraData holds at most {NONCE_MAX}")
    with tempfile.TemporaryDirectory(prefix="ccp-vtpm-") as directory:
        files = Path(directory)
        if user_data is not None:
            _write_user_data(fixed_report_data(user_data), files / "user_data", tcti)
        _tpm(tcti, "tpm2_nvread", "-C", "o", HCL_REPORT_NV_INDEX, "-o", str(files / "hcl_report"))
        (files / "nonce").write_bytes(nonce)
        _tpm(
            tcti, "tpm2_quote", "-c", AK_HANDLE, "-l", PCR_SELECTION, "-g", "sha256", "-q", str(files / "nonce"),
            "-m", str(files / "message"), "-s", str(files / "signature"), "-f", "plain",
            "-o", str(files / "pcrs"), "-F", "values",
        )  # fmt: skip
        pcrs = (files / "pcrs").read_bytes()
        if len(pcrs) != 24 * 32:
            raise EvidenceError(f"tpm2_quote wrote {len(pcrs)} bytes of PCR values, expected 24 SHA-256 values (768)")
        document = {
            "quote": {
                "message": list((files / "message").read_bytes()),
                "signature": list((files / "signature").read_bytes()),
                "pcrs": [list(pcrs[i : i + 32]) for i in range(0, len(pcrs), 32)],
            },
            "report": list((files / "hcl_report").read_bytes()),
        }
    if vcek_pem is not None:
        document["vcek"] = vcek_pem
    return json.dumps(document).encode()


@dataclass(frozen=True)
class AzureVtpmCollector:
    """The `Collector` for Azure CVMs: `report_data` is both the quote nonce and the HCL user data."""

    tcti: str = DEFAULT_TCTI
    vcek_pem: str | None = None

    def collect(self, report_data: bytes) -> Evidence:
        evidence = collect_evidence(report_data, user_data=report_data, vcek_pem=self.vcek_pem, tcti=self.tcti)
        return Evidence("azure-vtpm", evidence)


def _write_user_data(data: bytes, path: Path, tcti: str) -> None:
    """Define NV 0x01400002 (64 bytes, owner auth) if the guest has not yet, then write `data` to it."""
    path.write_bytes(data)
    try:
        _tpm(tcti, "tpm2_nvreadpublic", USER_DATA_NV_INDEX)
    except EvidenceError:
        _tpm(tcti, "tpm2_nvdefine", "-C", "o", USER_DATA_NV_INDEX, "-s", str(len(data)))
    _tpm(tcti, "tpm2_nvwrite", "-C", "o", USER_DATA_NV_INDEX, "-i", str(path))


def probe(tcti: str) -> None:
    """Raise `EvidenceError` unless the TPM at `tcti` holds Azure's HCL report NV index (an Azure CVM)."""
    _tpm(tcti, "tpm2_nvreadpublic", HCL_REPORT_NV_INDEX)


def _tpm(tcti: str, tool: str, *args: str) -> None:
    try:
        result = subprocess.run([tool, f"--tcti={tcti}", *args], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise EvidenceError(f"{tool} not found: install tpm2-tools") from None
    except subprocess.TimeoutExpired:
        raise EvidenceError(f"{tool} {' '.join(args)} did not finish within 60 s (TCTI {tcti})") from None
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise EvidenceError(f"{tool} {' '.join(args)} failed (exit {result.returncode}, TCTI {tcti}): {detail[0]}")
