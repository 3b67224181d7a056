"""Validate verified claims against the collaboration's approved measurements.

`verify` (in `enclave_runtime.attest`) says the evidence is genuine; this module says whether it is
*the approved workload*, in a mode and on a platform the collaboration accepts, bound to the value
the caller expects. Every check runs and every failure is reported, so a reviewer sees all that is
wrong at once; the decision allows only when none failed (fail closed: an absent measurement section,
an absent claim or an unknown kind is a failure, never a pass).

The policy is built from the same `ApprovedMeasurements` object the key policies are generated from:
`Policy.from_file` reads either a policy document or a Pulumi stack file's
`ccp:collaboration.measurements` and `ccp:environment` directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from .attest.claims import Claims
from .measurements import ApprovedMeasurements, Model

Environment = Literal["dev", "prod"]

# Values of Intel's TCB status that a default policy accepts (Intel PCS "tcbStatus"); anything else,
# e.g. OutOfDate or ConfigurationNeeded, must be accepted explicitly.
DEFAULT_TCB_STATUSES = ("UpToDate",)


class SnpTcb(Model):
    """Minimum SEV-SNP security patch levels (`reported_tcb` components); absent components are not checked."""

    fmc_spl: int | None = Field(default=None, ge=0, le=255)
    bl_spl: int | None = Field(default=None, ge=0, le=255)
    tee_spl: int | None = Field(default=None, ge=0, le=255)
    snp_spl: int | None = Field(default=None, ge=0, le=255)
    ucode_spl: int | None = Field(default=None, ge=0, le=255)


def _hex_bytes(value: str | None, what: str) -> bytes | None:
    if value is None:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{what}: {value!r} is not hex") from None


class Binding(Model):
    """Values the caller expects the evidence to carry (lowercase hex).

    `report_data` is the 64-byte report data of SNP/TDX/SGX (shorter values are compared zero-padded,
    as the hardware pads them); `nonce` is Nitro's nonce, the vTPM quote's qualifying data, or a token's
    nonce; `user_data` and `public_key` are Nitro's fields of those names.
    """

    report_data: str | None = Field(default=None, max_length=128)
    nonce: str | None = None
    user_data: str | None = None
    public_key: str | None = None

    @model_validator(mode="after")
    def _is_hex(self) -> "Binding":
        # A token's nonce is text chosen by the caller; every other binding is bytes.
        for name in ("report_data", "user_data", "public_key"):
            _hex_bytes(getattr(self, name), name)
        return self


class TokenPins(Model):
    """Who a token must come from and be for: Confidential Space tokens need `audience` (their issuer is
    fixed), MAA tokens need `issuer` (the attestation provider; they carry no audience)."""

    audience: str | None = None
    issuer: str | None = None


class Policy(Model):
    """What the collaboration accepts. Defaults are production rules; dev relaxations are explicit."""

    environment: Environment = "prod"
    measurements: ApprovedMeasurements
    allow_debug: bool = False
    min_snp_tcb: SnpTcb | None = None
    tcb_statuses: list[str] = Field(default_factory=lambda: list(DEFAULT_TCB_STATUSES), min_length=1)
    binding: Binding = Field(default_factory=Binding)
    token: TokenPins = Field(default_factory=TokenPins)

    @model_validator(mode="after")
    def _prod_is_strict(self) -> "Policy":
        if self.environment == "prod" and self.allow_debug:
            raise ValueError("allowDebug: true is refused in prod: debug TEEs never get production keys")
        return self

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> "Policy":
        """A policy document, or a Pulumi stack file's config (`ccp:environment`, `ccp:collaboration`)."""
        config = data.get("config")
        if isinstance(config, Mapping) and "ccp:collaboration" in config:
            environment = config.get("ccp:environment", "prod")
            collaboration = config["ccp:collaboration"]
            if not isinstance(collaboration, Mapping) or "measurements" not in collaboration:
                raise ValueError("ccp:collaboration.measurements is missing from the stack file")
            data = {"environment": environment, "measurements": collaboration["measurements"]}
        return cls.model_validate(data, context={"environment": data.get("environment", "prod")})

    @classmethod
    def from_file(cls, path: Path | str) -> "Policy":
        """Read JSON or YAML; raises `PolicyError` naming the file and each problem."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise PolicyError(f"{path}: cannot read the policy file: {exc.strerror}") from None
        try:
            if path.suffix == ".json":
                data = json.loads(text)
            else:
                import yaml  # only policy files need it; a verify-only caller never loads it

                data = yaml.safe_load(text)
        except ValueError as exc:
            raise PolicyError(f"{path}: not valid JSON/YAML: {exc}") from None
        except Exception as exc:  # yaml.YAMLError does not derive from ValueError
            raise PolicyError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(data, Mapping):
            raise PolicyError(f"{path}: expected a mapping (a policy document or a Pulumi stack file)")
        try:
            return cls.load(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
            )
            raise PolicyError(f"{path}: {problems}") from None
        except ValueError as exc:
            raise PolicyError(f"{path}: {exc}") from None


class PolicyError(Exception):
    """The policy itself is unusable (unreadable, malformed, contradictory)."""


@dataclass(frozen=True)
class Failure:
    check: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "message": self.message}


@dataclass
class Decision:
    allowed: bool = True
    failed: list[Failure] = field(default_factory=list)

    def fail(self, check: str, message: str) -> None:
        self.allowed = False
        self.failed.append(Failure(check, message))

    def as_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "failed": [f.as_dict() for f in self.failed]}


def validate(kind: str, claims: Claims | Mapping[str, Any], policy: Policy) -> Decision:
    """Apply `policy` to verified claims of `kind` (a `Claims` object or its `as_dict()`)."""
    values = claims.as_dict() if isinstance(claims, Claims) else dict(claims)
    decision = Decision()
    check = _KINDS.get(kind)
    if check is None:
        decision.fail("kind", f"no validation rules for evidence kind {kind!r}")
        return decision
    _common(values, policy, decision)
    check(values, policy, decision)
    return decision


# --- rules shared by every kind ---------------------------------------------------------------------


def _common(claims: Mapping[str, Any], policy: Policy, decision: Decision) -> None:
    if claims.get("simulated") is not False:
        if policy.environment == "prod":
            decision.fail(
                "simulation",
                f"evidence chains to {claims.get('anchor')!r}, the simulated TEE's root: prod accepts only "
                "evidence that chains to a pinned vendor root",
            )
    if claims.get("debug") is not False and not policy.allow_debug:
        decision.fail(
            "debug",
            "the TEE runs in debug mode (its memory is readable by the host): refused unless a dev policy "
            "sets allowDebug: true",
        )


def _equal(decision: Decision, check: str, name: str, actual: Any, expected: str) -> None:
    if not isinstance(actual, str) or actual.lower() != expected.lower():
        decision.fail(check, f"{name} is {actual!r}, the approved value is {expected!r}")


def _bound(decision: Decision, name: str, actual: Any, expected: str | None, size: int | None = None) -> None:
    """The claim equals the caller-supplied value (zero-padded to `size` bytes, as hardware pads it)."""
    if expected is None:
        return
    try:
        want = bytes.fromhex(expected)
    except ValueError:
        decision.fail("binding", f"the expected {name} {expected!r} is not hex, so no evidence can match it")
        return
    if size is not None:
        want = want.ljust(size, b"\0")
    if not isinstance(actual, str) or actual.lower() != want.hex():
        decision.fail("binding", f"{name} is {actual!r}, the caller expects {want.hex()!r}")


def _missing(decision: Decision, section: str, kind: str) -> None:
    decision.fail(
        "measurement",
        f"measurements.{section} is not set: no {kind} workload is approved (add measurements.{section} "
        "from the release build)",
    )


def _tcb_status(claims: Mapping[str, Any], policy: Policy, decision: Decision) -> None:
    status = claims.get("tcb_status")
    if status is not None and status not in policy.tcb_statuses:
        decision.fail(
            "tcb", f"platform TCB status is {status!r}; the policy accepts {policy.tcb_statuses} (tcbStatuses)"
        )


# --- per kind ------------------------------------------------------------------------------------------


def _nitro(claims: Mapping[str, Any], policy: Policy, decision: Decision) -> None:
    approved = policy.measurements.nitro
    if approved is None:
        _missing(decision, "nitro", "Nitro Enclaves")
    else:
        for name, value in approved.pinned().items():
            _equal(decision, "measurement", name, claims.get(name), value)
    for name in ("nonce", "user_data", "public_key"):
        _bound(decision, name, claims.get(name), getattr(policy.binding, name))


def _snp_measurements(
    snp: Mapping[str, Any], policy: Policy, decision: Decision, measurement: str = "measurement"
) -> None:
    """SEV-SNP identity from report claims, or from MAA claims (`measurement` names the claim)."""
    approved = policy.measurements.sev_snp
    if approved is None:
        _missing(decision, "sevSnp", "SEV-SNP")
        return
    if approved.launch_measurement is not None:
        _equal(decision, "measurement", measurement, snp.get(measurement), approved.launch_measurement)
    if approved.host_data is not None:
        _equal(decision, "measurement", "host_data", snp.get("host_data"), approved.host_data)


def _snp_tcb(snp: Mapping[str, Any], policy: Policy, decision: Decision) -> None:
    if policy.min_snp_tcb is None:
        return
    reported = snp.get("reported_tcb")
    if not isinstance(reported, Mapping):
        decision.fail("tcb", "reported_tcb is missing from the claims")
        return
    for name, minimum in policy.min_snp_tcb.model_dump(exclude_none=True).items():
        value = reported.get(name)
        if not isinstance(value, int) or value < minimum:
            decision.fail("tcb", f"reported_tcb.{name} is {value!r}, below the minimum {minimum} (minSnpTcb.{name})")


def _snp(claims: Mapping[str, Any], policy: Policy, decision: Decision) -> None:
    _snp_measurements(claims, policy, decision)
    _snp_tcb(claims, policy, decision)
    _bound(decision, "report_data", claims.get("report_data"), policy.binding.report_data, 64)


def _azure_vtpm(claims: Mapping[str, Any], policy: Policy, decision: Decision) -> None:
    snp = claims.get("snp")
    if not isinstance(snp, Mapping):
        decision.fail("measurement", "the SNP claims (snp) are missing from the vTPM claims")
        return
    _snp_measurements(snp, policy, decision)
    _snp_tcb(snp, policy, decision)
    _bound(decision, "nonce", claims.get("nonce"), policy.binding.nonce)


def _tdx(claims: Mapping[str, Any], policy: Policy, decision: Decision) -> None:
    approved = policy.measurements.tdx
    if approved is None:
        _missing(decision, "tdx", "TDX")
    else:
        _equal(decision, "measurement", "mrtd", claims.get("mrtd"), approved.mrtd)
    _tcb_status(claims, policy, decision)
    _bound(decision, "report_data", claims.get("report_data"), policy.binding.report_data, 64)


def _sgx_identity(claims: Mapping[str, Any], policy: Policy, decision: Decision, names: Mapping[str, str]) -> None:
    """SGX identity from quote claims or MAA claims (`names` maps our field to the claim name)."""
    approved = policy.measurements.sgx
    if approved is None:
        _missing(decision, "sgx", "SGX")
        return
    if approved.mrenclave is not None:
        _equal(decision, "measurement", names["mrenclave"], claims.get(names["mrenclave"]), approved.mrenclave)
    if approved.mrsigner is not None:
        _equal(decision, "measurement", names["mrsigner"], claims.get(names["mrsigner"]), approved.mrsigner)
    # Exact product id: with only MRSIGNER pinned, ">=" would admit every other product of the signer.
    product = claims.get(names["isvprodid"])
    if product != approved.product_id:
        decision.fail("measurement", f"{names['isvprodid']} is {product!r}, the approved product id is {approved.product_id}")
    svn = claims.get(names["isvsvn"])
    if not isinstance(svn, int) or svn < approved.min_svn:
        decision.fail("measurement", f"{names['isvsvn']} is {svn!r}, below the approved minimum {approved.min_svn}")


_SGX_QUOTE_NAMES = {"mrenclave": "mrenclave", "mrsigner": "mrsigner", "isvprodid": "isvprodid", "isvsvn": "isvsvn"}


def _sgx(claims: Mapping[str, Any], policy: Policy, decision: Decision) -> None:
    _sgx_identity(claims, policy, decision, _SGX_QUOTE_NAMES)
    _tcb_status(claims, policy, decision)
    _bound(decision, "report_data", claims.get("report_data"), policy.binding.report_data, 64)


def _token_pins(claims: Mapping[str, Any], policy: Policy, decision: Decision, *, required: str) -> None:
    """Who the token is from and for. `required` is the pin without which any token would pass: the
    audience of a Confidential Space token (Google is its only issuer), the issuer of an MAA token
    (MAA tokens carry no audience; Key Vault likewise trusts an attestation authority)."""
    pins = {"audience": policy.token.audience, "issuer": policy.token.issuer}
    if pins[required] is None:
        decision.fail(required, f"the policy pins no {required} (token.{required}): a token from any {required} would pass")
    audience = claims.get("audience")
    if pins["audience"] is not None and pins["audience"] not in (audience if isinstance(audience, list) else [audience]):
        decision.fail("audience", f"token audience is {audience!r}, the policy expects {pins['audience']!r}")
    if pins["issuer"] is not None and claims.get("issuer") != pins["issuer"]:
        decision.fail("issuer", f"token issuer is {claims.get('issuer')!r}, the policy expects {pins['issuer']!r}")
    nonce = policy.binding.nonce
    if nonce is not None:
        given = claims.get("nonce", claims.get("eat_nonce"))
        if nonce not in (given if isinstance(given, list) else [given]):
            decision.fail("binding", f"token nonce is {given!r}, the caller expects {nonce!r}")


# MAA's SGX claims as the token verifier flattens them (x-ms-sgx-mrenclave, -mrsigner, -product-id, -svn).
_MAA_SGX_NAMES = {"mrenclave": "mrenclave", "mrsigner": "mrsigner", "isvprodid": "product_id", "isvsvn": "svn"}


def _maa(claims: Mapping[str, Any], policy: Policy, decision: Decision) -> None:
    _token_pins(claims, policy, decision, required="issuer")
    tee = claims.get("tee_type")  # the TEE whose claims the token carries (an azurevm token nests sevsnpvm)
    if tee == "sevsnpvm":
        _snp_measurements(claims, policy, decision, measurement="launch_measurement")
    elif tee == "sgx":
        _sgx_identity(claims, policy, decision, _MAA_SGX_NAMES)
    elif tee == "tdxvm" and policy.measurements.tdx is not None:
        _equal(decision, "measurement", "mrtd", claims.get("mrtd"), policy.measurements.tdx.mrtd)
    elif tee == "tdxvm":
        _missing(decision, "tdx", "TDX")
    else:
        decision.fail("measurement", f"MAA TEE type {tee!r} has no validation rules (sevsnpvm, sgx, tdxvm)")


def _confidential_space(claims: Mapping[str, Any], policy: Policy, decision: Decision) -> None:
    _token_pins(claims, policy, decision, required="audience")
    approved = policy.measurements.confidential_space
    if approved is None:
        _missing(decision, "confidentialSpace", "Confidential Space")
    elif claims.get("image_digest") not in approved.image_digests:
        decision.fail(
            "measurement", f"image_digest is {claims.get('image_digest')!r}, not one of the approved {approved.image_digests}"
        )
    if claims.get("swname") != "CONFIDENTIAL_SPACE":
        decision.fail("measurement", f"swname is {claims.get('swname')!r}: only the Confidential Space image is trusted")
    support = claims.get("support_attributes") or []
    if policy.environment == "prod" and "STABLE" not in support:
        decision.fail(
            "measurement",
            f"support_attributes {support!r} lack STABLE: prod runs only the supported production image",
        )


_KINDS: dict[str, Callable[[Mapping[str, Any], Policy, Decision], None]] = {
    "aws-nitro": _nitro,
    "amd-sev-snp": _snp,
    "azure-vtpm": _azure_vtpm,
    "intel-tdx": _tdx,
    "intel-sgx": _sgx,
    "maa-token": _maa,
    "cs-token": _confidential_space,
}
