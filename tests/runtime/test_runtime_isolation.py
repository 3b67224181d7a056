"""The runtime is image-sized: verifying and validating evidence loads no Pulumi, no cloud SDK, and
nothing outside `enclave_runtime/requirements.txt`.

Run in a fresh interpreter, so that what this test process already imported (pytest, the IaC) does not
hide an import the runtime would need in an image.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.runtime.vectors import path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import datetime, json, sys
from pathlib import Path
from enclave_runtime.attest import Collateral, verify
from enclave_runtime.policy import Policy, validate

V = Path(sys.argv[1])
cases = [
    ("aws-nitro", "aws-nitro/nitro_evervault_beta_20221013.cbor", ["aws-nitro/aws_nitro_enclaves_root_g1.pem"], "2022-10-13T08:58:02.136+00:00"),
    ("amd-sev-snp", "amd-sev-snp/snp_trustee_milan_v2_report.bin", ["amd-sev-snp/snp_trustee_milan_vcek.der", "amd-sev-snp/ask_ark_milan.pem"], "2024-01-01T00:00:00+00:00"),
    ("intel-tdx", "intel-tdx/tdx_gtg_v5_quote.dat", ["intel-tdx/intel_sgx_root_ca.pem"], "2026-01-28T14:36:27+00:00"),
    ("intel-sgx", "intel-sgx/sgx_trustee_occlum_v3_debug_quote.dat", ["intel-sgx/intel_sgx_root_ca.pem"], "2023-04-27T15:35:16+00:00"),
    ("azure-vtpm", "tpm/azure_cvm_genoa_vtpm_evidence.json", ["amd-sev-snp/ask_ark_genoa.pem"], "2025-06-01T00:00:00+00:00"),
]
policy = Policy.load({"environment": "prod", "measurements": {"version": "1", "nitro": {"pcr0": "ab" * 48}}})
verified = []
for kind, evidence, with_, at in cases:
    claims = verify(kind, (V / evidence).read_bytes(), collateral=Collateral.from_files(V / w for w in with_), at=datetime.datetime.fromisoformat(at))
    validate(kind, claims, policy)
    verified.append(kind)
print(json.dumps({"verified": verified, "modules": sorted(sys.modules)}))
"""


def _run() -> dict[str, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(path("."))],
        cwd=REPO, capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)


def _requirements() -> set[str]:
    names = set()
    for line in (REPO / "enclave_runtime" / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(re.split(r"[=<>!~ ]", line)[0].lower().replace("_", "-"))
    return names


def test_verifying_every_kind_loads_no_pulumi_and_no_cloud_sdk() -> None:
    result = _run()
    assert result["verified"] == ["aws-nitro", "amd-sev-snp", "intel-tdx", "intel-sgx", "azure-vtpm"]
    forbidden = [m for m in result["modules"] if m.split(".")[0] in {"pulumi", "pulumi_policy", "boto3", "botocore", "azure", "google", "components", "stacks", "policies"} or m.startswith("pulumi")]
    assert forbidden == []


def test_every_third_party_module_loaded_is_in_the_runtime_requirements() -> None:
    from importlib.metadata import packages_distributions

    owners = packages_distributions()
    loaded = {m.split(".")[0] for m in _run()["modules"]}
    third_party = {
        m for m in loaded
        if m not in sys.stdlib_module_names and m not in {"enclave_runtime", "__main__"} and not m.startswith("_")
    }
    distributions = {owners[m][0].lower().replace("_", "-") for m in third_party if m in owners}
    unknown = sorted(third_party - set(owners))
    assert unknown == []
    missing = sorted(distributions - _requirements())
    assert missing == [], f"loaded by the runtime but not in enclave_runtime/requirements.txt: {missing}"
