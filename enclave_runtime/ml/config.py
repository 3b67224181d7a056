"""The job specification of the privacy-preserving workload: what the parties approve, checked before use.

Everything the parties agree to (rounds, SecAgg+ parameters, the privacy budget) is a frozen model read
from the collaboration's stack config, so a value outside what the protocol can honour is refused with
the field, the value and the fix, instead of being silently clipped or letting the protocol degrade
(e.g. a SecAgg+ threshold of 1 would let the server unmask single clients).

Stack config shape (camelCase, as in Pulumi config), under `ccp:collaboration`:

    privacy:    {epsilon: 3.0, delta: 1.0e-6, outputs: [cohort-statistics]}
    federated:  {rounds: 5, clientsPerRound: 3, localEpochs: 5, learningRate: 0.5, l2: 0.001,
                 secAgg: {numShares: 3, reconstructionThreshold: 2, clippingRange: 8.0,
                          quantizationRange: 4194304, modulusRange: 4294967296, maxWeight: 1000.0},
                 dp: {clippingNorm: 1.0, epsilon: 1.0, delta: 1.0e-6, output: global-model},
                 standardizer: {epsilon: 1.0, maxRows: 2000}}

`federated.dp` makes the model DP-FedAvg (client-side clipping, Gaussian noise on the unmasked mean; see
`accountant.py`): give either `epsilon` (the noise multiplier is calibrated to it) or `noiseMultiplier`.
`federated.standardizer` adds a DP feature scaling, released with the model and charged with it (its
epsilon); the stack declares it as `ccp:collaboration.federated.standardizer` (components/model.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from enclave_runtime.measurements import Model


class ConfigError(ValueError):
    """The job specification is unusable: the message names the field, the value and the fix."""


def even_shares_problem(shares: int, parties: int) -> str | None:
    """Why `shares` SecAgg+ shares cannot work for `parties` parties under the pinned flwr (None: they can).

    flwr 1.42's SecAggPlusWorkflow raises an even share count below the number of parties to the next odd
    one for its neighbour ring, after it has told the parties the even count: every party then fails while
    sharing its keys (IndexError in `secaggplus_mod._share_keys`), so such a job never trains. The stack
    check (components/model.py) and the runtime (`FederatedJob.check_parties`) both refuse it."""
    if shares % 2 or shares >= parties:
        return None
    return (  # shares < parties here, so the next odd count still fits
        f"{shares} is even and below the {parties} parties: Flower's SecAgg+ builds its neighbour ring with "
        f"{shares + 1} shares but gives the parties {shares}, and every party fails at key sharing; use an odd "
        f"number, e.g. {shares + 1}"
    )


class SecAggParams(Model):
    """SecAgg+ parameters (flwr `SecAggPlusWorkflow`), with the limits that keep the protocol meaningful."""

    num_shares: int = Field(default=3, ge=3)
    reconstruction_threshold: int = Field(default=2, ge=2)
    clipping_range: float = Field(default=8.0, gt=0)
    quantization_range: int = Field(default=2**22, gt=0)
    modulus_range: int = Field(default=2**32, gt=0, le=2**32)
    max_weight: float = Field(default=1000.0, gt=0)
    timeout: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> "SecAggParams":
        if self.reconstruction_threshold >= self.num_shares:
            raise ValueError(
                f"secAgg.reconstructionThreshold is {self.reconstruction_threshold} but must be below "
                f"secAgg.numShares ({self.num_shares}): set it to at most {self.num_shares - 1}"
            )
        if self.modulus_range <= self.quantization_range:
            raise ValueError(
                f"secAgg.modulusRange ({self.modulus_range}) must exceed secAgg.quantizationRange "
                f"({self.quantization_range}): masks are drawn mod modulusRange"
            )
        if self.modulus_range & (self.modulus_range - 1):
            raise ValueError(f"secAgg.modulusRange is {self.modulus_range}: use a power of two (e.g. 4294967296)")
        return self


class DPFedAvg(Model):
    """DP-FedAvg with client-side fixed clipping (flwr `fixedclipping_mod` + `DifferentialPrivacyClientSide
    FixedClipping`): each party's update is clipped to `clipping_norm` before SecAgg+ masks it, and the
    aggregator adds N(0, (z C / m)^2) to the unmasked mean. The privacy unit is one party (all its rows)."""

    clipping_norm: float = Field(default=1.0, gt=0, le=1e6)
    noise_multiplier: float | None = Field(default=None, gt=0, le=1e6)
    epsilon: float | None = Field(default=None, gt=0, le=100)
    delta: float = Field(default=1e-6, gt=0, lt=1)
    output: str | None = None  # the declared output the model is released to (charged to the ledger)

    @model_validator(mode="after")
    def _one_of(self) -> "DPFedAvg":
        if (self.noise_multiplier is None) == (self.epsilon is None):
            raise ValueError("federated.dp: give exactly one of epsilon (target) or noiseMultiplier")
        return self

    def resolved_noise_multiplier(self, rounds: int) -> float:
        from .accountant import noise_multiplier

        if self.noise_multiplier is not None:
            return self.noise_multiplier
        assert self.epsilon is not None
        return noise_multiplier(self.epsilon, rounds, self.delta)

    def spent_epsilon(self, rounds: int) -> float:
        """What `rounds` rounds at the resolved noise multiplier cost (<= `epsilon` when that is given)."""
        from .accountant import epsilon

        return epsilon(self.resolved_noise_multiplier(rounds), rounds, self.delta)


class DPStandardizer(Model):
    """The model's feature scaling, computed without any party's moments leaving it in the clear: every party
    maps its features into [0, 1] by the public bounds (`data.FEATURE_RANGES`, clamped), and its count, sums
    and sums of squares are summed by SecAgg+; the aggregator adds Laplace noise (OpenDP, L1 sensitivity of
    one row) to the sum before anything leaves it. Charged, with the model, to the model's output.

    `max_rows`: a public bound on one party's rows; its moments are divided by it so they fit SecAgg+'s
    clipping range (a party with more than max_rows x clippingRange rows would have its sums clipped)."""

    epsilon: float = Field(gt=0, le=100)
    max_rows: int = Field(default=2000, ge=1, le=10**6)


class FederatedJob(Model):
    """One federated training job: local logistic regression, FedAvg over SecAgg+ (or plain, for baselines)."""

    rounds: int = Field(default=5, ge=1, le=1000)
    # Every party trains every round (no client sampling; the accountant assumes none): when given, it must
    # equal the number of parties.
    clients_per_round: int | None = Field(default=None, ge=1)
    local_epochs: int = Field(default=5, ge=1, le=10_000)
    learning_rate: float = Field(default=0.5, gt=0, le=10)
    l2: float = Field(default=1e-3, ge=0)
    secure_aggregation: bool = True
    sec_agg: SecAggParams = Field(default_factory=SecAggParams)
    dp: DPFedAvg | None = None
    standardizer: DPStandardizer | None = None

    @model_validator(mode="after")
    def _standardizer_needs_secagg(self) -> "FederatedJob":
        if self.standardizer is not None and not self.secure_aggregation:
            raise ValueError("federated.standardizer needs secure aggregation: without it each party's moments "
                             "would reach the aggregator in the clear")
        return self

    @property
    def reported_weight(self) -> int:
        """The example count every party reports, whatever its rows: a constant, so no party's row count
        crosses to the aggregator (Flower's FitRes `num_examples`, SecAgg+'s weight factor) and FedAvg is
        the unweighted mean DP-FedAvg's calibration assumes. SecAgg+'s maxWeight gives the ratio 1, which
        keeps its quantization at full precision."""
        return int(self.sec_agg.max_weight)

    def check_parties(self, parties: int) -> None:
        """Refuse a job SecAgg+ cannot run correctly for this many parties, before any party trains: fewer
        clients than `numShares` means the key shares cannot be distributed as configured."""
        if self.clients_per_round is not None and self.clients_per_round != parties:
            raise ConfigError(
                f"federated.clientsPerRound is {self.clients_per_round} but {parties} parties take "
                f"part: every party trains every round (no client sampling), set it to {parties}"
            )
        if self.secure_aggregation and parties < self.sec_agg.num_shares:
            raise ConfigError(
                f"federated.secAgg.numShares is {self.sec_agg.num_shares} but only {parties} "
                f"parties take part: lower numShares to {parties} or add parties"
            )
        if self.secure_aggregation and (uneven := even_shares_problem(self.sec_agg.num_shares, parties)):
            raise ConfigError(f"federated.secAgg.numShares: {uneven}")


def _decimal(value: Any, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{name} is {value!r}, not a number") from None
    if not number.is_finite():
        raise ValueError(f"{name} is {value!r}: give a finite number")
    return number


class PrivacyBudget(Model):
    """The collaboration's total (epsilon, delta) under basic sequential composition.

    Kept as exact decimals (read from the config's text), so `remaining` after a series of spends is
    exact: 1.0 - 0.3 - 0.2 is 0.5, not 0.49999999999999994, and a query is never refused or admitted by a
    rounding error.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    epsilon: Decimal
    delta: Decimal = Decimal(0)
    outputs: tuple[str, ...] = ()

    @field_validator("epsilon", "delta", mode="before")
    @classmethod
    def _exact(cls, value: Any, info: Any) -> Decimal:
        return _decimal(value, f"privacy.{info.field_name}")

    @model_validator(mode="after")
    def _ranges(self) -> "PrivacyBudget":
        if self.epsilon <= 0:
            raise ValueError(f"privacy.epsilon is {self.epsilon}: give a total budget above 0 (e.g. 3.0)")
        if not 0 <= self.delta < 1:
            raise ValueError(f"privacy.delta is {self.delta}: give 0 <= delta < 1 (e.g. 1e-6)")
        return self


class MLConfig(Model):
    """The ML part of `ccp:collaboration`: its privacy budget and its federated job."""

    model_config = ConfigDict(extra="ignore")  # the rest of ccp:collaboration belongs to the IaC

    name: str
    privacy: PrivacyBudget | None = None
    federated: FederatedJob = Field(default_factory=FederatedJob)

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> "MLConfig":
        """`ccp:collaboration` itself, or a whole stack file (`config: {ccp:collaboration: ...}`)."""
        config = data.get("config")
        if isinstance(config, Mapping) and "ccp:collaboration" in config:
            data = config["ccp:collaboration"]
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"ccp:collaboration.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                + ("" if err["type"].startswith("value_error") or isinstance(err["input"], Mapping) else f" (got {err['input']!r})")
                for err in exc.errors()
            )
            raise ConfigError(problems) from None


def job_digest(job: Model) -> str:
    """SHA-256 of the job's canonical JSON: what a host binds into its attestation's report data, so a
    changed job (rounds, SecAgg+ or DP parameters) is a different attested workload."""
    canonical = json.dumps(job.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
