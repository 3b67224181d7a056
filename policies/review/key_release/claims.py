"""Attested claim sets, in each vendor's own format, for the cases the simulation judges.

Every claim set is built from the stack's approved measurements, so "approved-production" is exactly
what the approved build reports, and each other case changes only what that case is about. Where a
simulated TEE produces the evidence, the claims come from it: a Nitro attestation document (its PCRs
as KMS reads them), a confidential container's SEV-SNP report (the claims MAA derives from it, with
the derivation the MAA stand-in uses) and a Confidential Space token, each checked by part 1's
verifier first; SGX and TDX tokens carry the claims MAA derives from a simulated quote. Only the CVM
guest-attestation token (vTPM + HCL report) is still built as a claim set; on the measured-guest path its
custom claims are those the recorded MAA attestation policy issues for the guest's PCRs (maa.py). The cases:

- `debug-mode`: the same build started for debugging. Nitro Enclaves in `--debug-mode` report
  all-zero PCRs (Nitro Enclaves user guide, "Where to get an enclave's measurements"); MAA reports
  `...is-debuggable: true` with the same measurement; Confidential Space debug images report
  `dbgstat: enabled` and no `support_attributes` (token claims reference).
- `unapproved-image`: the same platform and identity running a different build (different image
  and signer, so neither a PCR0 nor a PCR8 pin admits it).
- `other-collaboration`: another collaboration's workload (its own identity, in its own account or
  project) — once with its own build and once with ours, so both the measurement and the identity
  binding are exercised.
- `no-attestation`: the workload's identity calling without any attestation evidence.

Within `unapproved-image`, an SGX workload is also presented as another product of the same signer
(`other-product:<label>`: the approved MRSIGNER and SVN, a different MRENCLAVE and a higher product
id), which only an exact product-id comparison refuses when the policy pins MRSIGNER alone.

MAA token layouts: SGX claims are top level (https://learn.microsoft.com/azure/attestation/claim-sets);
a confidential VM's guest token nests the SNP report's claims under `x-ms-isolation-tee`
(https://learn.microsoft.com/azure/attestation/attestation-token-examples); MAA's TDX token is an
EAT with every claim (`tdx_mrtd`, `tdx_td_attributes_debug`, `x-ms-attestation-type`) top level
(https://learn.microsoft.com/azure/attestation/trust-domain-extensions-eat-profile), with the
attestation type and compliance status values of Microsoft's published policy
(https://github.com/Azure/confidential-computing-cvm/blob/main/cvm_deployment/key/skr-policy.json).

Values that are not measurements (instance ids, VM ids, PCR3/PCR4) are deterministic stand-ins.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final, Mapping

from enclave_runtime.measurements import ApprovedMeasurements

CASES: Final[tuple[str, ...]] = (
    "approved-production",
    "debug-mode",
    "unapproved-image",
    "other-collaboration",
    "no-attestation",
)
EXPECTED: Final[dict[str, str]] = {case: "deny" for case in CASES} | {"approved-production": "release"}

OTHER_AWS_ACCOUNT: Final = "444455556666"
OTHER_GCP_PROJECT: Final = "other-collab-project"
OTHER_GCP_PROJECT_NUMBER: Final = "987654321098"


def stand_in(label: str, hex_chars: int) -> str:
    """A deterministic lowercase-hex value that is not any approved measurement."""
    digest = hashlib.sha512(f"ccp-simulated:{label}".encode()).hexdigest()
    while len(digest) < hex_chars:
        digest += hashlib.sha512(digest.encode()).hexdigest()
    return digest[:hex_chars]


# --- AWS Nitro Enclaves ---------------------------------------------------------------------------


def nitro_pcrs(measurements: ApprovedMeasurements, variant: str) -> dict[str, str]:
    """PCR0-4 and PCR8 as KMS reads them from an attestation document; `approved`, `debug` or `other:<label>`.

    The values come from evidence, not from a dict: the simulated NSM signs a document for the case
    (in debug mode it zeroes every PCR itself), part 1's verifier checks it, and the verified PCRs are
    returned, so a case can only present what a document can carry.
    """
    nitro = measurements.nitro
    pcrs: dict[int, bytes] = {}
    for index in NITRO_PCR_INDICES:
        pcr = f"pcr{index}"
        approved = getattr(nitro, pcr, None) if nitro is not None else None
        if variant in ("approved", "debug") and approved is not None:
            pcrs[index] = bytes.fromhex(approved)
        elif variant in ("approved", "debug") or pcr in ("pcr3", "pcr4"):
            pcrs[index] = bytes.fromhex(stand_in(f"nitro-{pcr}", 96))
        else:
            pcrs[index] = bytes.fromhex(stand_in(f"{variant}-{pcr}", 96))
    verified = _attested(pcrs, debug=variant == "debug")
    return {f"pcr{index}": verified[index].hex() for index in NITRO_PCR_INDICES}


NITRO_PCR_INDICES: Final = (0, 1, 2, 3, 4, 8)


@functools.cache
def _nitro() -> Any:
    from enclave_runtime.simulate.nitro import SimulatedNitro

    return SimulatedNitro()


def _attested(pcrs: dict[int, bytes], *, debug: bool) -> Mapping[int, bytes]:
    """The PCRs of a simulated attestation document after verification against the simulation root."""
    from enclave_runtime.attest import TrustStore, verify

    nsm = _nitro()
    at = dt.datetime.now(dt.timezone.utc)
    document = nsm.attest(pcrs=pcrs, debug=debug, at=at)
    return verify("aws-nitro", document, store=TrustStore(simulation_roots=[nsm.root]), at=at).pcrs  # type: ignore[attr-defined]


def other_role_arn(account: str, label: str) -> str:
    return f"arn:aws:iam::{account}:role/{label}-enclave-host"


# --- Azure (Microsoft Azure Attestation tokens) ---------------------------------------------------


@dataclass(frozen=True)
class AzureWorkload:
    """What an Azure host is attested as: its TEE, whether it is a confidential container, and whether it is
    a confidential VM on the measured-guest path (its vTPM PCRs, `measurements.azureCvm`)."""

    tee: str
    container: bool
    measured_guest: bool = False


def azure_guest_token(
    measurements: ApprovedMeasurements, issuer: str, variant: str, policies: Mapping[str, str]
) -> dict[str, Any] | None:
    """MAA's token for an Azure confidential VM guest (`attest/AzureGuest`) in Microsoft's documented layout
    ("JSON web token", https://learn.microsoft.com/azure/confidential-computing/guest-attestation-confidential-vms),
    with the claims the attestation policy recorded for `issuer` issues for the guest's PCRs (None when that
    policy refuses the guest: MAA issues no token). Without a recorded policy, the provider runs Microsoft's
    default, which issues no custom claim (its hash is a stand-in).

    `approved`: the measured image's PCRs, hardened; `debug`: the same image booted with debuggers and a
    kernel debugger enabled (a debuggable SNP guest); anything else: another image (other PCRs)."""
    from components.attestation.azure_guest_policy import policy_hash
    from policies.review.key_release.maa import evaluate

    approved = measurements.azure_cvm.pcrs if measurements.azure_cvm is not None else {}
    label = variant.split(":", 1)[-1]
    own = variant in ("approved", "debug")
    pcrs = dict(approved) if own else {index: stand_in(f"{label}-pcr{index}", 64) for index in approved}
    debug = variant == "debug"
    policy = policies.get(issuer.rstrip("/"))
    issued = evaluate(policy, pcrs) if policy is not None else {}
    if issued is None:
        return None
    return {
        "iss": issuer.rstrip("/"),
        "secureboot": True,
        "x-ms-attestation-type": "azurevm",
        "x-ms-azurevm-attestation-protocol-ver": "2.0",
        "x-ms-azurevm-attested-pcrs": sorted(int(index) for index in pcrs),
        "x-ms-azurevm-bootdebug-enabled": False,
        "x-ms-azurevm-debuggersdisabled": not debug,
        "x-ms-azurevm-hypervisordebug-enabled": False,
        "x-ms-azurevm-kerneldebug-enabled": debug,
        "x-ms-azurevm-testsigning-enabled": False,
        "x-ms-azurevm-vmid": stand_in(f"{label}-vmid", 32),
        "x-ms-isolation-tee": {
            "x-ms-attestation-type": "sevsnpvm",
            "x-ms-compliance-status": "azure-compliant-cvm",
            "x-ms-sevsnpvm-is-debuggable": debug,
            # Microsoft's paravisor and firmware: the same for every guest image.
            "x-ms-sevsnpvm-launchmeasurement": stand_in("azure-paravisor", 96),
        },
        "x-ms-policy-hash": policy_hash(policy) if policy is not None else stand_in("maa-default-policy", 43),
        "x-ms-ver": "1.0",
    } | issued


def maa_token(
    measurements: ApprovedMeasurements,
    workload: AzureWorkload,
    issuer: str,
    variant: str,
    guest_policies: Mapping[str, str] | None = None,
) -> dict[str, Any] | None:
    """The claims MAA puts in a token for this workload (`approved`, `debug`, `other:<label>`,
    `other-tee:<label>` for a different TEE kind of another collaboration, `other-product:<label>`
    for another SGX product of the approved signer (on other TEEs that is `other:<label>`), or
    `cvm:<label>` for an Azure confidential VM presenting the approved SEV-SNP values in the CVM
    layout: nested under `x-ms-isolation-tee`, top-level `x-ms-attestation-type` `azurevm`). A measured-guest
    CVM's token comes from `azure_guest_token` and the recorded attestation policies (issuer -> text);
    None when that policy refuses to attest the guest."""
    if workload.measured_guest and not variant.startswith("other-tee"):
        return azure_guest_token(measurements, issuer, variant, guest_policies or {})
    debug = variant == "debug"
    # `cvm:` shows our values only where it is about a container workload (elsewhere: another build).
    own = variant in ("approved", "debug") or (variant.startswith("cvm") and workload.container)
    label = variant.split(":", 1)[-1]
    tee = workload.tee
    if variant.startswith("other-tee"):
        tee = "tdx" if workload.tee != "tdx" else "sev-snp"
    base: dict[str, Any] = {"iss": issuer.rstrip("/"), "x-ms-ver": "1.0"}
    if tee == "sgx":
        sgx = measurements.sgx
        same_signer = variant.startswith("other-product") and sgx is not None
        return _sgx_token(
            issuer,
            mrenclave=sgx.mrenclave if own and sgx and sgx.mrenclave else stand_in(f"{label}-mrenclave", 64),
            mrsigner=sgx.mrsigner if (own or same_signer) and sgx and sgx.mrsigner else stand_in(f"{label}-mrsigner", 64),
            product_id=sgx.product_id + 1 if same_signer else sgx.product_id if own and sgx else 0,
            svn=sgx.min_svn if (own or same_signer) and sgx else 0,
            debug=debug,
        )
    if tee == "tdx":
        tdx = measurements.tdx
        return _tdx_token(issuer, tdx.mrtd if own and tdx else stand_in(f"{label}-mrtd", 96), debug)
    snp = measurements.sev_snp
    launch = snp.launch_measurement if own and snp and snp.launch_measurement else stand_in(f"{label}-launch", 96)
    host_data = snp.host_data if own and snp and snp.host_data else stand_in(f"{label}-hostdata", 64)
    hardware = {
        "x-ms-attestation-type": "sevsnpvm",
        "x-ms-sevsnpvm-launchmeasurement": launch,
        "x-ms-sevsnpvm-hostdata": host_data,
        "x-ms-sevsnpvm-is-debuggable": debug,
        "x-ms-sevsnpvm-vmpl": 0,
        "x-ms-sevsnpvm-guestsvn": 1,
    }
    if workload.container and not variant.startswith(("other-tee", "cvm")):
        # Confidential containers: the SKR sidecar attests at `attest/SevSnpVm`, and the utility VM's
        # claims are top level. From evidence: a simulated SNP guest's report, verified, then the
        # claims MAA derives from it (the same derivation the MAA stand-in issues).
        return _container_token(issuer, host_data, launch, debug)
    return base | {
        "x-ms-attestation-type": "azurevm",
        "x-ms-azurevm-vmid": stand_in(f"{label}-vmid", 32),
        "x-ms-isolation-tee": hardware | {"x-ms-compliance-status": "azure-compliant-cvm"},
    }


@functools.cache
def _dcap() -> Any:
    from enclave_runtime.simulate.dcap import SimulatedDcap

    return SimulatedDcap(dt.datetime.now(dt.timezone.utc))


def _dcap_verified(kind: str, quote: bytes) -> Any:
    from enclave_runtime.attest import TrustStore, verify

    return verify(kind, quote, store=TrustStore(simulation_roots=[_dcap().root]))


def _sgx_token(issuer: str, *, mrenclave: str, mrsigner: str, product_id: int, svn: int, debug: bool) -> dict[str, Any]:
    """MAA's claims for an SGX enclave with these values, from a simulated quote the verifier checked."""
    from enclave_runtime.simulate.dcap import QE_ATTRIBUTES

    from policies.review.key_release.azure import sgx_claims

    attributes = bytes([QE_ATTRIBUTES[0] | (0x02 if debug else 0)]) + QE_ATTRIBUTES[1:]  # ATTRIBUTES.DEBUG
    quote = _dcap().sgx_quote(
        mrenclave=bytes.fromhex(mrenclave), mrsigner=bytes.fromhex(mrsigner), isvprodid=product_id, isvsvn=svn,
        attributes=attributes,
    )
    return sgx_claims(_dcap_verified("intel-sgx", quote), issuer)


def _tdx_token(issuer: str, mrtd: str, debug: bool) -> dict[str, Any]:
    """MAA's TDX claims for a TD with this MRTD, from a simulated quote the verifier checked."""
    from policies.review.key_release.azure import tdx_claims

    quote = _dcap().tdx_quote(mrtd=bytes.fromhex(mrtd), td_attributes=bytes([0x01 if debug else 0]) + bytes(7))
    return tdx_claims(_dcap_verified("intel-tdx", quote), issuer)


@functools.cache
def _snp() -> Any:
    from enclave_runtime.simulate.snp import SimulatedSnp

    return SimulatedSnp()


def _container_token(issuer: str, host_data: str, launch: str, debug: bool) -> dict[str, Any]:
    """MAA's claims for a confidential container group's SNP report with these values, from evidence."""
    from cryptography import x509

    from enclave_runtime.attest import Collateral, TrustStore, verify
    from enclave_runtime.simulate.snp import SimulatedSnpGuest
    from policies.review.key_release.azure import sev_snp_vm_claims

    sim = _snp()
    guest = SimulatedSnpGuest(sim, bytes.fromhex(host_data), debug=debug, measurement=bytes.fromhex(launch))
    runtime: dict[str, Any] = {"keys": []}  # the runtime key is not what the release policy judges
    evidence = guest.snp_report(hashlib.sha256(json.dumps(runtime).encode()).digest())
    chain = [x509.load_der_x509_certificate(der) for _, der in evidence.collateral]
    verified = verify(
        "amd-sev-snp", evidence.evidence, collateral=Collateral(certificates=chain), store=TrustStore(simulation_roots=[sim.root])
    )
    return sev_snp_vm_claims(verified, evidence.evidence, runtime, issuer)


# --- GCP Confidential Space attestation tokens ----------------------------------------------------


@dataclass(frozen=True)
class GcpWorkload:
    project: str
    project_number: str
    service_account: str
    hwmodel: str
    zone: str


def confidential_space_token(
    workload: GcpWorkload, image_digest: str, *, debug: bool = False
) -> dict[str, Any]:
    """The claims of a Confidential Space token for STS (default audience) from `workload`.

    From evidence: the simulated launcher signs a token in Google's documented layout and part 1's
    verifier checks it against the simulated signer's JWKS; the verified payload is what STS judges.
    """
    from enclave_runtime.attest import Collateral, verify
    from enclave_runtime.simulate.tokens import CS_AUDIENCE, SimulatedConfidentialSpace

    issuer = _cs_signer()
    launcher = SimulatedConfidentialSpace(
        issuer,
        image_digest,
        [workload.service_account],
        hwmodel=workload.hwmodel,
        project=workload.project,
        project_number=workload.project_number,
        zone=workload.zone,
        debug=debug,
    )
    token = launcher.token(CS_AUDIENCE)
    return dict(verify("cs-token", token, collateral=Collateral(documents=[issuer.jwks()])).claims)  # type: ignore[attr-defined]


@functools.cache
def _cs_signer() -> Any:
    from enclave_runtime.attest.tokens import CONFIDENTIAL_SPACE_ISSUER
    from enclave_runtime.simulate.tokens import TokenIssuer

    return TokenIssuer(CONFIDENTIAL_SPACE_ISSUER)


def other_image_digest(label: str) -> str:
    return f"sha256:{stand_in(label + '-image', 64)}"
