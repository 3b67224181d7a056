"""The approved workload measurements: the one typed input every key-release policy is generated from.

Each cloud attests a workload in its own format, so the object carries one section per TEE family.
A section that is absent means "no workload of that kind is approved": generators must then emit no
grant at all for it (fail closed), never a wildcard.

Formats (lowercase hex, as the clouds' condition keys and claims compare them):
- Nitro Enclaves PCR0/1/2/8: SHA-384, 96 hex chars (AWS KMS `kms:RecipientAttestation:*`).
- SEV-SNP launch measurement: 48 bytes, 96 hex; host data (Azure confidential-container policy hash):
  SHA-256, 64 hex.
- TDX MRTD: 48 bytes, 96 hex.
- SGX MRENCLAVE / MRSIGNER: SHA-256, 64 hex.
- Confidential Space image digests: ``sha256:<64 hex>``.
- Azure confidential VM guest (vTPM) PCRs: SHA-256 bank, 64 hex each, by PCR index (`azureCvm.pcrs`).
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from enclave_runtime.jcs import canonicalize

NitroPcr = Literal["pcr0", "pcr1", "pcr2", "pcr3", "pcr8"]


class Model(BaseModel):
    """Base for config models: camelCase keys as in Pulumi config, unknown keys refused, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


def _hex(length: int, what: str):
    pattern = re.compile(rf"^[0-9a-f]{{{length}}}$")

    def check(value: str) -> str:
        if not isinstance(value, str) or not pattern.match(value):
            raise PydanticCustomError(
                "ccp_hex",
                "'{value}' is not a {what}: expected {length} lowercase hex characters",
                {"value": value, "what": what, "length": length},
            )
        return value

    return AfterValidator(check)


def _digest(value: str) -> str:
    if not isinstance(value, str) or not re.match(r"^sha256:[0-9a-f]{64}$", value):
        raise PydanticCustomError(
            "ccp_digest",
            "'{value}' is not an image digest: expected 'sha256:' followed by 64 lowercase hex characters",
            {"value": value},
        )
    return value


Sha384Hex = Annotated[str, _hex(96, "SHA-384 measurement")]
Sha256Hex = Annotated[str, _hex(64, "SHA-256 measurement")]
ImageDigest = Annotated[str, AfterValidator(_digest)]


def is_all_zero(value: str) -> bool:
    """What a debug-mode TEE reports (Nitro `--debug-mode` zeroes every PCR): never an approved
    measurement. The one check, used by the config model and the policy rules alike."""
    stripped = value.lower().removeprefix("sha256:")
    return bool(stripped) and set(stripped) == {"0"}


class NitroMeasurements(Model):
    """AWS Nitro Enclaves PCRs. `pin` chooses what the KMS key policy compares.

    Pinning `pcr0` pins one exact enclave image; pinning `pcr8` (the signing certificate) admits any
    image signed by that key without a policy change. The choice is explicit, never implied.
    """

    pcr0: Sha384Hex | None = None
    pcr1: Sha384Hex | None = None
    pcr2: Sha384Hex | None = None
    pcr3: Sha384Hex | None = None  # the parent instance's IAM role: optional defence in depth
    pcr8: Sha384Hex | None = None
    pin: list[NitroPcr] = Field(default_factory=lambda: ["pcr0"], min_length=1)

    @model_validator(mode="after")
    def _pinned_are_set(self) -> "NitroMeasurements":
        for name in self.pin:
            if getattr(self, name) is None:
                raise PydanticCustomError(
                    "ccp_pin",
                    "pin lists '{name}' but {name} is not set: give its 96-hex value or remove it from pin",
                    {"name": name},
                )
        return self

    def pinned(self) -> dict[str, str]:
        """PCR name -> value for the pinned registers, in a stable order."""
        return {name: getattr(self, name) for name in sorted(set(self.pin))}


class SevSnpMeasurements(Model):
    """AMD SEV-SNP: the launch measurement of a CVM image, and/or the host data of a confidential
    container group (Azure: SHA-256 of the container security policy)."""

    launch_measurement: Sha384Hex | None = None
    host_data: Sha256Hex | None = None
    # The confidential container group's CCE policy (base64 Rego, as `az confcom acipolicygen`
    # writes it into `confidentialComputeProperties.ccePolicy`). When given, hostData must be the
    # SHA-256 of its decoded bytes: the UVM reports that hash as HOST_DATA.
    cce_policy: str | None = None

    @model_validator(mode="after")
    def _one_pin(self) -> "SevSnpMeasurements":
        if self.launch_measurement is None and self.host_data is None:
            raise PydanticCustomError(
                "ccp_pin",
                "sevSnp needs launchMeasurement (96 hex) or hostData (64 hex): the TEE type alone does "
                "not identify the workload",
            )
        if self.cce_policy is not None:
            digest = cce_policy_host_data(self.cce_policy)
            if digest is None:
                raise PydanticCustomError(
                    "ccp_cce_policy",
                    "sevSnp.ccePolicy is not base64: give the policy exactly as `az confcom acipolicygen` "
                    "prints it (base64 of the Rego text)",
                )
            if self.host_data != digest:
                raise PydanticCustomError(
                    "ccp_cce_policy",
                    "sevSnp.hostData '{host_data}' is not the SHA-256 of sevSnp.ccePolicy ({digest}): the "
                    "confidential container group reports the hash of the policy it runs, so set hostData "
                    "to {digest} (or regenerate both from one `az confcom acipolicygen` run)",
                    {"host_data": self.host_data, "digest": digest},
                )
        return self


def cce_policy_host_data(cce_policy: str) -> str | None:
    """The `x-ms-sevsnpvm-hostdata` a confidential container group with this base64 CCE policy
    reports: SHA-256 of the decoded policy. None when the value is not base64."""
    import base64
    import binascii

    try:
        raw = base64.b64decode(cce_policy, validate=True)
    except (binascii.Error, ValueError):
        return None
    return hashlib.sha256(raw).hexdigest() if raw else None


class TdxMeasurements(Model):
    """Intel TDX: MRTD, the measurement of the initial TD contents."""

    mrtd: Sha384Hex


class SgxMeasurements(Model):
    """Intel SGX: exact build (MRENCLAVE) and/or signer (MRSIGNER) with product and SVN floors."""

    mrenclave: Sha256Hex | None = None
    mrsigner: Sha256Hex | None = None
    product_id: int = Field(default=0, ge=0, le=65535)
    min_svn: int = Field(default=0, ge=0, le=65535)

    @model_validator(mode="after")
    def _one_pin(self) -> "SgxMeasurements":
        if self.mrenclave is None and self.mrsigner is None:
            raise PydanticCustomError(
                "ccp_pin", "sgx needs mrenclave or mrsigner (64 hex each)"
            )
        return self


# vTPM PCR indices (TPM 2.0 PC Client: 0-23).
_PCR_INDEX = re.compile(r"^(?:[0-9]|1[0-9]|2[0-3])$")


def _pcrs(value: dict[str, str]) -> dict[str, str]:
    for index in value:
        if not _PCR_INDEX.match(index):
            raise PydanticCustomError(
                "ccp_pcr",
                "'{index}' is not a vTPM PCR index: use the decimal index 0-23 as the key (e.g. '4': <64 hex>)",
                {"index": index},
            )
    return dict(sorted(value.items(), key=lambda item: int(item[0])))


class AzureCvmMeasurements(Model):
    """An Azure confidential VM as a workload host (opt-in): the guest's own vTPM PCRs (SHA-256 bank) of a
    measured image. An Azure CVM's hardware report measures Microsoft's paravisor and firmware only; the
    guest OS is covered by the vTPM quote's PCRs
    (https://learn.microsoft.com/azure/confidential-computing/guest-attestation-confidential-virtual-machines-design),
    so these values are what the collaboration's own MAA attestation policy checks before it emits the
    claim the data keys pin (components/attestation/azure_guest_policy.py)."""

    pcrs: Annotated[dict[str, Sha256Hex], AfterValidator(_pcrs)] = Field(min_length=1)


class ConfidentialSpaceMeasurements(Model):
    """GCP Confidential Space: the approved container images, by digest."""

    image_digests: list[ImageDigest] = Field(min_length=1)


class ApprovedMeasurements(Model):
    """One reviewed, versioned set of measurements every party binds its key to."""

    version: str = Field(min_length=1, pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]*$")
    nitro: NitroMeasurements | None = None
    sev_snp: SevSnpMeasurements | None = None
    tdx: TdxMeasurements | None = None
    sgx: SgxMeasurements | None = None
    confidential_space: ConfidentialSpaceMeasurements | None = None
    azure_cvm: AzureCvmMeasurements | None = None

    @model_validator(mode="after")
    def _not_debug_in_prod(self, info: ValidationInfo) -> "ApprovedMeasurements":
        """All-zero values are what debug TEEs report; production never approves them."""
        if (info.context or {}).get("environment") == "dev":
            return self  # anything but an explicit dev stack is held to production rules
        debug = [
            f"{path}: {value[:16]}... is all zeros, which is what a debug-mode TEE reports: production "
            "keys are never released to debug workloads; use the release build's measurement"
            for path, value in self.values()
            if is_all_zero(value)
        ]
        if debug:
            # "ccp_many": one "relative.path: message" per line (see stacks.config).
            raise PydanticCustomError("ccp_many", "\n".join(debug))
        return self

    def values(self) -> list[tuple[str, str]]:
        """Every measurement value with its dotted camelCase path, for checks that span formats."""
        found: list[tuple[str, str]] = []
        data = self.document()
        for section, fields in data.items():
            if not isinstance(fields, dict):
                continue
            for key, value in fields.items():
                if key == "ccePolicy":
                    continue  # the policy text, not a measurement (its hash is hostData)
                if isinstance(value, str) and key != "pin":
                    found.append((f"{section}.{key}", value))
                elif isinstance(value, list) and key != "pin":
                    found.extend(
                        (f"{section}.{key}[{i}]", v) for i, v in enumerate(value)
                    )
                elif isinstance(value, dict):
                    found.extend((f"{section}.{key}.{k}", v) for k, v in value.items())
        return found

    def document(self) -> dict:
        """The set as the measurement contract records it: camelCase keys, defaults filled in (e.g.
        `nitro.pin`), absent sections left out. What the key policies are generated from."""
        return self.model_dump(by_alias=True, exclude_none=True)

    def canonical_json(self) -> bytes:
        """RFC 8785 (JCS) bytes of `document()`: what the contract digest, and so every party's
        signature, covers (`components.attestation.contract`)."""
        return canonicalize(self.document())

    def digest(self) -> str:
        """`sha256:<hex>` of the canonical JSON: the measurement contract's digest."""
        return "sha256:" + hashlib.sha256(self.canonical_json()).hexdigest()

    def fingerprint(self) -> str:
        """Short stable id of the set, used to show that all party keys pin the same measurements
        (the first 16 hex digits of `digest()`)."""
        return self.digest().removeprefix("sha256:")[:16]
