"""The collaboration domain model: parties, workload hosts, approved measurements, outputs.

Components take these typed objects; `stacks.config` reads them from Pulumi config. Every check here
runs before any resource is declared, and each failure names the field, the value and the fix.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from components.attestation.aws_key_policy import ACCOUNT_ROOT, BREAK_GLASS_ROLE
from enclave_runtime.measurements import ApprovedMeasurements, Model
from enclave_runtime.ml.config import even_shares_problem
from components.regions import CLOUD_LABELS, Cloud, is_region

Environment = Literal["dev", "prod"]
Tee = Literal["nitro", "sev-snp", "tdx", "sgx", "confidential-space", "confidential-containers"]
Classification = Literal["internal", "confidential", "pii", "phi", "pci"]
# Personal data: a collaboration over it releases only differentially private outputs in prod
# (rule stack-collaboration-output-enforce-dp).
PERSONAL_DATA: Final[tuple[Classification, ...]] = ("phi", "pii", "pci")


def _name(value: str) -> str:
    if not re.match(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$", value):
        raise PydanticCustomError(
            "ccp_name",
            "'{value}' is not a valid name: use 3-32 lowercase letters, digits and hyphens, starting "
            "with a letter (it becomes part of cloud resource names)",
            {"value": value},
        )
    return value


Name = Annotated[str, AfterValidator(_name)]

# Which clouds run which TEE, and which measurement section identifies it.
TEE_CLOUDS: Final[dict[str, frozenset[str]]] = {
    "nitro": frozenset({"aws"}),
    "sev-snp": frozenset({"azure", "gcp"}),
    "tdx": frozenset({"azure", "gcp"}),
    "sgx": frozenset({"azure"}),
    "confidential-space": frozenset({"gcp"}),
    # Azure Container Instances confidential container group (AMD SEV-SNP utility VM, CCE policy).
    "confidential-containers": frozenset({"azure"}),
}
TEE_MEASUREMENTS: Final[dict[str, str]] = {
    "nitro": "nitro",
    "sev-snp": "sevSnp",
    "tdx": "tdx",
    "sgx": "sgx",
    "confidential-space": "confidentialSpace",
    "confidential-containers": "sevSnp",
}
# The documented attestation-bound key-release paths: (key cloud) -> TEEs on that cloud whose
# attestation the cloud's key service itself checks. Anything else has no documented path.
KEY_RELEASE_PATHS: Final[dict[str, frozenset[str]]] = {
    "aws": frozenset({"nitro"}),
    # sev-snp on Azure releases as AKS confidential containers (`kubernetes: true`), or as a confidential
    # VM only on the opt-in measured-guest path (`measurements.azureCvm.pcrs`; see CVM_REFUSED).
    "azure": frozenset({"confidential-containers", "sev-snp", "tdx", "sgx"}),
    "gcp": frozenset({"confidential-space"}),
}
KEY_RELEASE_HINT: Final[dict[str, str]] = {
    "aws": "AWS KMS releases keys to attested Nitro Enclaves only (kms:RecipientAttestation)",
    "azure": "Azure Key Vault secure key release accepts Microsoft Azure Attestation tokens of Azure "
    "confidential container groups, SGX enclaves and SEV-SNP confidential VMs whose vTPM PCRs the collaboration's "
    "own attestation policy checks (measurements.azureCvm.pcrs) only",
    "gcp": "Cloud KMS is reached through Workload Identity Federation with Confidential Space "
    "attestation tokens only",
}


GUEST_ATTESTATION_DOCS: Final = (
    "https://learn.microsoft.com/azure/confidential-computing/guest-attestation-confidential-virtual-machines-design"
)
CVM_REFUSED: Final = (
    "an Azure SEV-SNP confidential VM cannot be the release target of an Azure data key on its launch measurement: "
    "x-ms-isolation-tee.x-ms-sevsnpvm-launchmeasurement measures Microsoft's paravisor and UEFI firmware, not the "
    "guest or the workload (" + GUEST_ATTESTATION_DOCS + "), so any code running in the VM would get the key and the "
    "value changes when Microsoft services the paravisor; use tee 'confidential-containers' (an Azure confidential "
    "container group) with measurements.sevSnp.ccePolicy (from `az confcom acipolicygen`) and "
    "measurements.sevSnp.hostData (its SHA-256), or keep the CVM and add measurements.azureCvm.pcrs (PCR index -> "
    "SHA-256 of the measured image's vTPM PCRs, checked by the collaboration's own isolated-mode attestation policy)"
)


def azure_cvm_host(host: "WorkloadHost") -> bool:
    """An Azure SEV-SNP confidential VM host (not an AKS node pool, not a container group)."""
    return host.cloud == "azure" and host.tee == "sev-snp" and not host.kubernetes


def releases_key(key_cloud: str, host: "WorkloadHost", measurements: ApprovedMeasurements) -> bool:
    """Whether `host` is a documented, workload-bound release target of a key on `key_cloud`."""
    if host.cloud != key_cloud or host.tee not in KEY_RELEASE_PATHS[key_cloud]:
        return False
    # An Azure SEV-SNP CVM is a release target only on the measured-guest path (its vTPM PCRs).
    return not azure_cvm_host(host) or measurements.azure_cvm is not None


def measurement_section(host: "WorkloadHost", measurements: ApprovedMeasurements) -> str:
    """The measurements section that identifies `host`'s workload (an Azure CVM: its guest PCRs when given)."""
    if azure_cvm_host(host) and measurements.azure_cvm is not None:
        return "azureCvm"
    return TEE_MEASUREMENTS[host.tee]


def _region_problem(cloud: str, region: str) -> PydanticCustomError:
    return PydanticCustomError(
        "ccp_region",
        "'{region}' is not an {label} region (see components/regions.py for the accepted names)"
        if CLOUD_LABELS[cloud][0] in "AEIOU"
        else "'{region}' is not a {label} region (see components/regions.py for the accepted names)",
        {"region": region, "label": CLOUD_LABELS[cloud]},
    )


class Located(Model):
    """Something that lives in one region of one cloud; the region must exist on that cloud."""

    cloud: Cloud
    region: str

    @field_validator("region")
    @classmethod
    def _known_region(cls, region: str, info: Any) -> str:
        cloud = info.data.get("cloud")
        if cloud and not is_region(cloud, region):
            raise _region_problem(cloud, region)
        return region


class Dataset(Model):
    name: Name
    classification: Classification
    description: str = ""


def _signing_key(value: str) -> str:
    """Inline PEM must be a supported public key; a path must stay inside the repository (the file
    itself is read by the contract check, which knows the repository root)."""
    from pathlib import PurePosixPath

    from components.attestation.contract import ContractError, is_pem, load_public_key

    if is_pem(value):
        try:
            load_public_key(value)
        except ContractError as error:
            raise PydanticCustomError("ccp_signing_key", "{error}", {"error": str(error)}) from None
        return value
    path = PurePosixPath(value)
    if not value.strip() or path.is_absolute() or ".." in path.parts or path.suffix != ".pem":
        raise PydanticCustomError(
            "ccp_signing_key",
            "'{value}' is neither a PEM public key nor a repository-relative path of a .pem file (no '..', "
            "not absolute)",
            {"value": value},
        )
    return value


class Party(Located):
    """An organisation that contributes data; it owns its key and storage on its own cloud.

    `account` is the party's AWS account id, Azure subscription id or GCP project id (the stack's
    default provider account when absent). `ownerDecrypt` lets `ownerPrincipal` decrypt outside the
    enclave: off by default, and shown in review. `breakGlassPrincipal` (AWS parties, required in
    every environment: no silent account-root default) is the IAM role that alone may administer
    the party's data key, in an MFA session; everyone else is denied policy changes.
    """

    name: Name
    allowed_regions: list[str] = Field(default_factory=list)
    data_classification: Classification
    datasets: list[Dataset] = Field(min_length=1)
    account: str | None = None
    owner_decrypt: bool = False
    owner_principal: str | None = None
    break_glass_principal: str | None = None
    deploy_role: str | None = None
    # The party's key for signing the measurement contract (components/attestation/contract.py):
    # an Ed25519 / ECDSA P-256 PEM public key, or the repository path of a PEM file holding one.
    measurement_signing_key: Annotated[str, AfterValidator(_signing_key)] | None = None

    @model_validator(mode="after")
    def _break_glass(self) -> "Party":
        value = self.break_glass_principal
        if self.cloud != "aws":
            if value is not None:
                raise PydanticCustomError(
                    "ccp_many",
                    "breakGlassPrincipal: '{value}' is for AWS parties (the KMS key policy's administrator); "
                    "remove it from this {cloud} party",
                    {"value": value, "cloud": self.cloud},
                )
            return self
        fix = (
            "name the party's break-glass IAM role, e.g. arn:aws:iam::<account>:role/<party>-key-break-glass: "
            "only that role, in an MFA session, may change the data key's policy or grants"
        )
        if value is None:
            raise PydanticCustomError("ccp_many", "breakGlassPrincipal: is required for an AWS party: " + fix)
        match = BREAK_GLASS_ROLE.match(value)
        if ACCOUNT_ROOT.match(value) or match is None:
            raise PydanticCustomError(
                "ccp_many",
                "breakGlassPrincipal: '{value}' is not an IAM role ARN (an account root delegates "
                "kms:PutKeyPolicy to every IAM administrator of the account): " + fix,
                {"value": value},
            )
        if self.account is not None and match.group(2) != self.account:
            raise PydanticCustomError(
                "ccp_many",
                "breakGlassPrincipal: '{value}' is not in the party's account {account}: use a role of "
                "that account (whoever controls the role's account controls the key)",
                {"value": value, "account": self.account},
            )
        return self

    @model_validator(mode="after")
    def _deploy_role(self) -> "Party":
        """`deployRole`: the IAM role in the party's own account that `pulumi up` assumes (the party's
        explicit provider) to declare the party's keys there. Required when `account` is not the
        deploying account (checked by the AWS site, which knows the deploying account)."""
        value = self.deploy_role
        if value is None:
            return self
        if self.cloud != "aws":
            raise PydanticCustomError(
                "ccp_many",
                "deployRole: '{value}' is for AWS parties (the role assumed to declare the party's keys in its "
                "own account); remove it from this {cloud} party",
                {"value": value, "cloud": self.cloud},
            )
        match = BREAK_GLASS_ROLE.match(value)
        if ACCOUNT_ROOT.match(value) or match is None:
            raise PydanticCustomError(
                "ccp_many",
                "deployRole: '{value}' is not an IAM role ARN: name the role in the party's own account that "
                "deploys its keys, e.g. arn:aws:iam::<account>:role/<party>-key-deployer",
                {"value": value},
            )
        if self.account is None:
            raise PydanticCustomError(
                "ccp_many",
                "deployRole: '{value}' is set but account is not: set account to the party's AWS account id "
                "({role_account}), the account whose keys that role deploys",
                {"value": value, "role_account": match.group(2)},
            )
        if match.group(2) != self.account:
            raise PydanticCustomError(
                "ccp_many",
                "deployRole: '{value}' is not in the party's account {account}: use a role of that account "
                "(the party's keys are created where the role lives)",
                {"value": value, "account": self.account},
            )
        return self

    @model_validator(mode="after")
    def _residency(self) -> "Party":
        for allowed in self.allowed_regions:
            if not is_region(self.cloud, allowed):
                raise _region_problem(self.cloud, allowed)
        if self.allowed_regions and self.region not in self.allowed_regions:
            raise PydanticCustomError(
                "ccp_residency",
                "region '{region}' is not in allowedRegions {allowed}: add it or choose an allowed region",
                {"region": self.region, "allowed": self.allowed_regions},
            )
        if self.owner_decrypt and not self.owner_principal:
            raise PydanticCustomError(
                "ccp_owner",
                "ownerDecrypt is true but ownerPrincipal is not set: name the principal that may decrypt "
                "outside the enclave",
            )
        return self

    @property
    def regions(self) -> list[str]:
        """Where this party's resources may live (data residency)."""
        return self.allowed_regions or [self.region]


class WorkloadHost(Located):
    """One place the approved workload runs: a TEE on a cloud."""

    tee: Tee
    instance_type: str | None = None
    kubernetes: bool = False

    @model_validator(mode="after")
    def _tee_on_cloud(self) -> "WorkloadHost":
        if self.tee == "confidential-containers" and (self.kubernetes or self.instance_type is not None):
            raise PydanticCustomError(
                "ccp_tee",
                "tee 'confidential-containers' is an Azure Container Instances confidential container group: "
                "it has no instanceType and no kubernetes (for AKS confidential containers use tee 'sev-snp' "
                "with kubernetes: true)",
            )
        if self.cloud not in TEE_CLOUDS[self.tee]:
            raise PydanticCustomError(
                "ccp_tee",
                "tee '{tee}' does not run on {label}: it runs on {clouds}",
                {
                    "tee": self.tee,
                    "label": CLOUD_LABELS[self.cloud],
                    "clouds": ", ".join(sorted(TEE_CLOUDS[self.tee])),
                },
            )
        return self


class Workload(Model):
    name: Name
    hosts: list[WorkloadHost] = Field(min_length=1)
    image: str | None = None


class Output(Model):
    """An approved output of the workload and the parties that receive it."""

    name: Name
    recipients: list[str] = Field(min_length=1)
    description: str = ""


class Privacy(Model):
    """The collaboration's total differential-privacy budget (`ccp:collaboration.privacy`).

    `epsilon` and `delta` are the totals every DP release of the collaboration spends from (basic
    sequential composition, enforced by the runtime's ledger, `enclave_runtime.ml.dp`); `outputs` names
    the declared outputs whose releases spend it. A job feeding any other output may not spend.
    """

    epsilon: float
    delta: float
    outputs: list[Name] = Field(min_length=1)

    @field_validator("epsilon")
    @classmethod
    def _epsilon(cls, value: float) -> float:
        if not (math.isfinite(value) and value > 0):
            raise PydanticCustomError(
                "ccp_privacy", "{value} is not a usable total epsilon: give a finite number above 0 (e.g. 3.0)",
                {"value": value},
            )
        return value

    @field_validator("delta")
    @classmethod
    def _delta(cls, value: float) -> float:
        if not (math.isfinite(value) and 0 < value < 1):
            raise PydanticCustomError(
                "ccp_privacy", "{value} is not a usable total delta: give a number above 0 and below 1, far below "
                "1/rows (e.g. 1e-6)",
                {"value": value},
            )
        return value


def _positive(kind: str, example: str) -> Any:
    def check(value: float) -> float:
        if not (math.isfinite(value) and value > 0):
            raise PydanticCustomError(
                "ccp_federated", "{value} is not a usable " + kind + ": give a finite number above 0 (e.g. " + example + ")",
                {"value": value},
            )
        return value

    return AfterValidator(check)


class SecAgg(Model):
    """SecAgg+ (Flower `SecAggPlusWorkflow`): each update is secret-shared into `numShares` shares, and
    `reconstructionThreshold` of them recover a dropped party's mask. Below the threshold, colluding parties
    learn nothing of another party's update."""

    num_shares: int = Field(le=1000)
    reconstruction_threshold: int = Field(le=1000)

    @field_validator("num_shares")
    @classmethod
    def _shares(cls, value: int) -> int:
        if value < 3:
            raise PydanticCustomError(
                "ccp_federated", "{value} shares is too few: SecAgg+ needs at least 3 (with fewer, the parties "
                "holding a share can rebuild a single party's mask and read its update)", {"value": value},
            )
        return value

    @field_validator("reconstruction_threshold")
    @classmethod
    def _threshold(cls, value: int) -> int:
        if value < 2:
            raise PydanticCustomError(
                "ccp_federated", "{value} is too low: with a threshold of 1 any one share unmasks a party's update; "
                "give at least 2", {"value": value},
            )
        return value


class FederatedDP(Model):
    """DP-FedAvg: each party's update clipped to `clippingNorm` before SecAgg+ masks it, Gaussian noise on the
    unmasked mean; calibrated to `epsilon` or given as `noiseMultiplier` (exactly one), charged to `output`."""

    clipping_norm: Annotated[float, _positive("clipping norm", "1.0")]
    epsilon: Annotated[float, _positive("epsilon", "1.0")] | None = None
    noise_multiplier: Annotated[float, _positive("noise multiplier", "1.1")] | None = None
    delta: float
    output: Name

    @field_validator("delta")
    @classmethod
    def _delta(cls, value: float) -> float:
        if not (math.isfinite(value) and 0 < value < 1):
            raise PydanticCustomError(
                "ccp_federated", "{value} is not a usable delta: give a number above 0 and below 1 (e.g. 1e-6)",
                {"value": value},
            )
        return value


class FederatedStandardizer(Model):
    """The model's DP feature scaling (`enclave_runtime.ml.config.DPStandardizer`): each party's per-feature
    count, sums and sums of squares within public ranges, summed by SecAgg+, Laplace noise at `epsilon` added
    by the attested aggregator; charged with DP-FedAvg to `federated.dp.output`. `maxRows`: a public bound on
    one party's rows (its moments are scaled by it to fit SecAgg+'s clipping range)."""

    epsilon: Annotated[float, _positive("epsilon", "1.0")]
    max_rows: int = Field(default=2000, ge=1, le=10**6)


class Federated(Model):
    """The federated job the parties approve (`ccp:collaboration.federated`), run by `enclave_runtime.ml`."""

    rounds: int = Field(ge=1, le=1000)
    clients_per_round: int = Field(ge=1)
    sec_agg: SecAgg
    dp: FederatedDP | None = None
    standardizer: FederatedStandardizer | None = None

    @property
    def planned_epsilon(self) -> float | None:
        """Epsilon the job charges with the model (DP standardizer + DP-FedAvg): 0 without DP, None when
        DP-FedAvg is given by noise multiplier (its epsilon is only known to the runtime's accountant)."""
        if self.dp is None:
            return 0.0
        if self.dp.epsilon is None:
            return None
        return self.dp.epsilon + (self.standardizer.epsilon if self.standardizer is not None else 0.0)


class Collaboration(Model):
    name: Name
    parties: list[Party] = Field(min_length=1)
    workload: Workload
    measurements: ApprovedMeasurements
    outputs: list[Output] = Field(default_factory=list)
    privacy: Privacy | None = None
    federated: Federated | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "Collaboration":
        problems: list[str] = []
        names = [p.name for p in self.parties]
        for i, name in enumerate(names):
            if names.index(name) != i:
                problems.append(
                    f"parties[{i}].name: '{name}' is used by another party: names must be unique"
                )
        measured = self.measurements.model_dump(by_alias=True, exclude_none=True)
        for i, host in enumerate(self.workload.hosts):
            section = measurement_section(host, self.measurements)
            if section not in measured:
                problems.append(
                    f"workload.hosts[{i}].tee: {host.tee!r} has no approved measurements: add "
                    f"measurements.{section}"
                )
        azure_keys = any(p.cloud == "azure" for p in self.parties)
        snp = self.measurements.sev_snp
        for i, host in enumerate(self.workload.hosts):
            if not azure_keys or host.cloud != "azure":
                continue
            if azure_cvm_host(host) and self.measurements.azure_cvm is None:
                # Old configs (an Azure CVM pinned by its launch measurement) fail loudly here.
                problems.append(f"workload.hosts[{i}].tee: {CVM_REFUSED}")
            elif host.tee == "confidential-containers" and snp is not None and (
                snp.host_data is None or snp.cce_policy is None
            ):
                problems.append(
                    "measurements.sevSnp: an Azure confidential container group needs ccePolicy (base64, from "
                    "`az confcom acipolicygen`) and hostData (its SHA-256): the data key's release policy pins "
                    "x-ms-sevsnpvm-hostdata, the hash of the policy the group runs; a launchMeasurement alone "
                    "measures Microsoft's utility VM, not the workload"
                )
        for i, party in enumerate(self.parties):
            paths = KEY_RELEASE_PATHS[party.cloud]
            if not any(releases_key(party.cloud, h, self.measurements) for h in self.workload.hosts):
                problems.append(
                    f"parties[{i}].cloud: {party.cloud!r} has no workload host its key can be released to: "
                    f"{KEY_RELEASE_HINT[party.cloud]}; add a workload host on {party.cloud} with tee "
                    f"{' or '.join(sorted(paths - ({'sev-snp', 'tdx'} if party.cloud == 'azure' else set())))}"
                )
        if self.measurements.azure_cvm is not None and not any(azure_cvm_host(h) for h in self.workload.hosts):
            problems.append(
                "measurements.azureCvm: is set but no workload host is an Azure SEV-SNP confidential VM (cloud azure, "
                "tee sev-snp, no kubernetes): remove it or declare that host (its PCRs pin nothing else)"
            )
        for i, output in enumerate(self.outputs):
            for j, recipient in enumerate(output.recipients):
                if recipient not in names:
                    problems.append(
                        f"outputs[{i}].recipients[{j}]: {recipient!r} is not a party of this "
                        f"collaboration (parties: {', '.join(names)})"
                    )
        declared = [o.name for o in self.outputs]
        spending = self.privacy.outputs if self.privacy is not None else []
        for i, output in enumerate(spending):
            if output not in declared:
                problems.append(
                    f"privacy.outputs[{i}]: {output!r} is not a declared output (outputs: "
                    f"{', '.join(declared) or 'none'}): declare it under outputs or remove it here"
                )
            elif spending.index(output) != i:
                problems.append(f"privacy.outputs[{i}]: {output!r} is listed twice")
        if self.federated is not None:
            problems += self._federated_problems(len(names))
        if problems:
            raise PydanticCustomError("ccp_many", "\n".join(problems))
        return self

    def _federated_problems(self, parties: int) -> list[str]:
        problems: list[str] = []
        job = self.federated
        assert job is not None
        if parties < 3:
            problems.append(
                f"federated.secAgg: secure aggregation needs at least 3 parties, this collaboration has {parties}: "
                "with 2, each party learns the other's update by subtracting its own from the sum, and SecAgg+ "
                "needs numShares >= 3 parties to share its masks among; add parties or do not run federated training"
            )
        elif job.sec_agg.num_shares > parties:
            problems.append(
                f"federated.secAgg.numShares: {job.sec_agg.num_shares} shares but only {parties} parties to hold "
                f"them: set it to at most {parties}"
            )
        elif uneven := even_shares_problem(job.sec_agg.num_shares, parties):
            problems.append(f"federated.secAgg.numShares: {uneven}")
        if job.sec_agg.reconstruction_threshold >= job.sec_agg.num_shares:
            problems.append(
                f"federated.secAgg.reconstructionThreshold: {job.sec_agg.reconstruction_threshold} must be below "
                f"numShares ({job.sec_agg.num_shares}): set it to at most {job.sec_agg.num_shares - 1}"
            )
        if job.clients_per_round != parties:
            problems.append(
                f"federated.clientsPerRound: {job.clients_per_round} but the collaboration has {parties} parties: "
                f"every party trains every round (the runtime samples no clients and the DP accountant assumes "
                f"none), set it to {parties}"
            )
        dp = job.dp
        if job.standardizer is not None and dp is None:
            problems.append("federated.standardizer: it is charged with the model to federated.dp.output; declare "
                            "federated.dp (or remove the standardizer: the model then takes raw features)")
        if dp is None:
            return problems
        if (dp.epsilon is None) == (dp.noise_multiplier is None):
            problems.append("federated.dp: give exactly one of epsilon (a target, the noise is calibrated to it) "
                            "or noiseMultiplier")
        if self.privacy is None:
            problems.append(
                f"federated.dp.output: {dp.output!r} cannot be charged: the collaboration declares no privacy "
                "budget; add ccp:collaboration.privacy naming it under outputs"
            )
            return problems
        if dp.output not in self.privacy.outputs:
            problems.append(
                f"federated.dp.output: {dp.output!r} is not an output the budget declares (privacy.outputs: "
                f"{', '.join(self.privacy.outputs)}): the model's DP-FedAvg spend is charged to it"
            )
        if dp.epsilon is not None and dp.epsilon > self.privacy.epsilon:
            problems.append(
                f"federated.dp.epsilon: {dp.epsilon} exceeds the collaboration's total privacy.epsilon "
                f"({self.privacy.epsilon}): the runtime would refuse to train"
            )
        elif job.standardizer is not None and (job.planned_epsilon or 0.0) > self.privacy.epsilon:
            problems.append(
                f"federated.standardizer.epsilon: {job.standardizer.epsilon} plus federated.dp.epsilon "
                f"({dp.epsilon}) exceeds the collaboration's total privacy.epsilon ({self.privacy.epsilon}): they are "
                "charged together and the runtime would refuse to train"
            )
        if dp.delta > self.privacy.delta:
            problems.append(
                f"federated.dp.delta: {dp.delta} exceeds the collaboration's total privacy.delta "
                f"({self.privacy.delta}): the runtime would refuse to train"
            )
        return problems

    def party(self, name: str) -> Party:
        return next(p for p in self.parties if p.name == name)
