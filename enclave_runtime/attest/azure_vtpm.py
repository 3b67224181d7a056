"""Azure confidential-VM vTPM evidence (kind `azure-vtpm`): a TPM quote vouched for by an SEV-SNP report.

On an Azure SEV-SNP CVM the guest's measurements live in the vTPM (PCRs), which the paravisor (HCL) runs;
the hardware report measures only the paravisor and UEFI. The chain of trust is therefore:
SNP report (VCEK → ASK → ARK) → report_data[0:32] = hash of the HCL runtime-data JSON → the AK in it
(`keys[kid=HCLAkPub]`) → the TPM quote → the PCR values. Each arrow is checked here; a broken one is a
`binding` failure, and nothing past it is trusted.

Evidence is the JSON of confidential-containers/trustee's az-snp-vtpm verifier (and of
`enclave_runtime.evidence.azure_vtpm`): `{"quote": {"message", "signature", "pcrs": [24]}, "report": HCL
report, "vcek": PEM}`, each byte field a JSON byte array, hex or base64.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.exceptions import PyJWTError

from .claims import Claims, internal
from .collateral import Collateral, canonical_pem_certificates, decode_text, json_object
from .errors import VerificationError
from .hcl import HclReport
from .snp.verify import SnpClaims, verify_report
from .tpm import AttestationKey, verify_quote
from .trust import TrustStore

AK_KID = "HCLAkPub"


@dataclass(frozen=True)
class AzureVtpmClaims(Claims):
    """Claims of an Azure CVM: the SNP report's (under `snp`), the quoted PCRs (`pcr0`…), the quote nonce."""

    kind: ClassVar[str] = "azure-vtpm"
    snp: SnpClaims
    nonce: bytes  # the quote's extraData: the verifier's challenge
    vm_configuration: dict[str, Any]  # from the HCL runtime data: secure-boot, tpm-enabled, console-enabled, ...
    user_data: str  # the 64 bytes written to NV 0x01400002 before the report was made (hex, as the HCL gives it)
    pcrs: dict[int, bytes] = internal()  # SHA-256 bank, published as claims pcr0 … pcr23
    ak_public: AttestationKey = internal()  # verified AK: later quotes from this vTPM verify with it

    @property
    def debug(self) -> bool:
        return self.snp.debug

    def as_dict(self) -> dict[str, Any]:
        data = super().as_dict()
        data["snp"] = self.snp.as_dict()
        data.update({f"pcr{index}": value.hex() for index, value in sorted(self.pcrs.items())})
        return data


def verify(evidence: bytes, collateral: Collateral, store: TrustStore, at: dt.datetime, *, kind: str) -> AzureVtpmClaims:
    """Verify Azure vTPM evidence as of `at`; ASK/ARK come from `collateral` or `store` (e.g. `--with` the AMD chain)."""
    document = json_object(evidence, "azure-vtpm evidence", "input")
    quote = document.get("quote")
    if not isinstance(quote, dict):
        raise VerificationError("input", f"evidence quote is a {type(quote).__name__}, expected an object")
    hcl = HclReport.parse(_bytes(document.get("report"), "report"))
    snp = verify_report(hcl.snp_report, collateral, store, at, extra_certificates=_vcek(document))
    runtime = hcl.bound_runtime(snp.report_data)
    ak = _attestation_key(runtime)
    pcrs = quote.get("pcrs")
    if not isinstance(pcrs, list):
        raise VerificationError("input", f"evidence quote.pcrs is a {type(pcrs).__name__}, expected a list of 24 PCR values")
    values = {index: _bytes(value, f"quote.pcrs[{index}]") for index, value in enumerate(pcrs)}
    info = verify_quote(_bytes(quote.get("message"), "quote.message"), _bytes(quote.get("signature"), "quote.signature"), values, ak)
    configuration = runtime.get("vm-configuration", {})
    user_data = runtime.get("user-data", "")
    if not isinstance(configuration, dict) or not isinstance(user_data, str):
        raise VerificationError("structure", "HCL runtime data vm-configuration must be an object and user-data a string")
    return AzureVtpmClaims(
        anchor=snp.anchor,
        snp=snp,
        nonce=info.nonce,
        vm_configuration=configuration,
        user_data=user_data.lower(),
        pcrs=info.pcrs,
        ak_public=ak,
    )


def _vcek(document: dict[str, Any]) -> list[x509.Certificate]:
    """The VCEK the evidence brings (Azure serves it from IMDS/THIM); absent, it must come with the collateral."""
    vcek = document.get("vcek")
    if vcek is None:
        return []
    if isinstance(vcek, str) and "-----BEGIN" in vcek:
        return canonical_pem_certificates(vcek.encode(), "evidence vcek")
    certificates = Collateral()
    certificates.add(_bytes(vcek, "vcek"), "evidence vcek")
    return certificates.certificates


def _attestation_key(runtime: dict[str, Any]) -> AttestationKey:
    keys = runtime.get("keys")
    jwk = next((k for k in keys if isinstance(k, dict) and k.get("kid") == AK_KID), None) if isinstance(keys, list) else None
    if jwk is None:
        raise VerificationError("structure", f"HCL runtime data has no keys[] entry with kid {AK_KID!r}")
    algorithm = {"RSA": RSAAlgorithm, "EC": ECAlgorithm}.get(jwk.get("kty"))  # type: ignore[call-overload]
    if algorithm is None:
        raise VerificationError("structure", f"{AK_KID} has kty {jwk.get('kty')!r}, expected 'RSA' or 'EC'")
    try:
        key = algorithm.from_jwk(jwk)
    except (PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise VerificationError("structure", f"{AK_KID} is not a valid {jwk['kty']} JWK: {exc}") from None
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise VerificationError("structure", f"{AK_KID} is a {type(key).__name__}, expected a public key")
    return key


def _bytes(value: Any, field: str) -> bytes:
    """A byte field as trustee writes it (JSON array of 0..255), or as hex, or as base64."""
    if isinstance(value, list):
        # Only JSON integers (not true/false, which Python counts as ints); bytes() checks the range.
        if set(map(type, value)) <= {int}:
            try:
                return bytes(value)
            except ValueError:
                pass
        raise VerificationError("input", f"evidence {field} is a list but not of byte values 0..255")
    if isinstance(value, str):
        decoded = decode_text(value.encode())
        if decoded is not None:
            return decoded
    raise VerificationError("input", f"evidence {field} is {type(value).__name__}, expected bytes: a JSON byte array, hex or base64")
