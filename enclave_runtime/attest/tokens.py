"""Verify attestation tokens: Microsoft Azure Attestation (MAA) and Google Confidential Space.

Both are JWTs signed by an attestation service, not by the TEE: the service verified the hardware evidence,
and the token is only as trusted as the service's signing keys. Those keys arrive as a JWKS file given with
the token (`--with`), never fetched here, so a verification is reproducible offline. The trust anchor is
therefore the issuer, pinned per kind:

- Confidential Space: one global issuer, `CONFIDENTIAL_SPACE_ISSUER` (Google, "Attestation token claims").
- MAA: one issuer per attestation provider (`https://<name>.<region>.attest.azure.net`), so the provider
  is pinned by its OpenID discovery document (`<issuer>/.well-known/openid-configuration`), given with
  `--with`. Without it any MAA provider, including one whose policy an attacker wrote, would do.

Verification is cryptographic only: signature (RS256 only), key lookup by `kid`, `exp`/`nbf`/`iat` at the
verification time (never the wall clock, no leeway), issuer, and the presence and JSON types of the claims
read. Whether the workload is the approved one, or the audience the expected one, is policy
(`enclave_runtime.policy`): the audience and the whole payload (`claims`) are exposed for it.

Failures name a check: `structure` (not a compact JWS, undecodable header or payload, algorithm not
allowed), `input` (JWKS or discovery document unreadable or absent), `chain` (the JWKS key named by `kid`
is unfit to verify a signature: `use`, `key_ops`, `alg`, `kty`), `signature` (no key with that `kid`, or the
signature does not verify), `validity` (times), `claims` (issuer, missing or mistyped claims).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from .claims import Claims
from .collateral import Collateral, json_object
from .errors import VerificationError
from .trust import TrustStore

# Google, "Attestation token claims" (confidential-computing/confidential-space/docs/reference/token-claims)
# and its discovery document https://confidentialcomputing.googleapis.com/.well-known/openid-configuration:
# every Confidential Space token has exactly this `iss` (no trailing slash; the trailing slash belongs to
# the workload identity pool provider's issuer URI, not to the token).
CONFIDENTIAL_SPACE_ISSUER = "https://confidentialcomputing.googleapis.com"

# Both services sign RS256 (MAA "Examples of an attestation token"; the Confidential Space discovery
# document's id_token_signing_alg_values_supported). Neither documents another algorithm, so none is
# accepted: not `none`, not HMAC (a public key used as an HMAC secret forges any token).
ALGORITHMS = ("RS256",)

# Confidential Space's documented production value of `dbgstat`; anything else (`enabled`, absent) is debug.
PRODUCTION_DBGSTAT = "disabled-since-boot"

# Where an MAA token says whether the TEE is debuggable, by the TEE's attestation type (claim sets,
# "Examples of an attestation token", TDX EAT profile).
_MAA_DEBUG_CLAIM = {
    "sevsnpvm": "x-ms-sevsnpvm-is-debuggable",
    "sgx": "x-ms-sgx-is-debuggable",
    "tdxvm": "tdx_td_attributes_debug",
}


# --- claim shapes ---------------------------------------------------------------------------------

Shape = tuple[Callable[[Any], bool], str]

STRING: Shape = (lambda v: isinstance(v, str), "a string")
INTEGER: Shape = (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer")
BOOLEAN: Shape = (lambda v: isinstance(v, bool), "a boolean")
OBJECT: Shape = (lambda v: isinstance(v, dict), "a JSON object")
STRINGS: Shape = (lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v), "an array of strings")
STRING_OR_STRINGS: Shape = (lambda v: STRING[0](v) or STRINGS[0](v), "a string or an array of strings")
STRING_MAP: Shape = (
    lambda v: isinstance(v, dict) and all(isinstance(i, str) for i in v.values()),
    "a JSON object of strings",
)


def _claim(payload: Mapping[str, Any], path: str, shape: Shape, *, required: bool = False) -> Any:
    """The claim at dotted `path`, checked against `shape`; None when absent and not required.

    A present claim of the wrong type is refused rather than read as absent: the token was signed with
    that value, and a policy that saw None would judge a different token.
    """
    value: Any = payload
    walked: list[str] = []
    for part in path.split("."):
        if not isinstance(value, dict):
            raise VerificationError(
                "claims", f"claim {'.'.join(walked)} is {value!r}, expected a JSON object holding {part!r}"
            )
        walked.append(part)
        value = value.get(part)
        if value is None:
            if required:
                raise VerificationError("claims", f"token has no {path} claim: it is required")
            return None
    check, expected = shape
    if not check(value):
        raise VerificationError("claims", f"claim {path} is {value!r}, expected {expected}")
    return value


# --- claims ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MaaClaims(Claims):
    """An MAA token's claims. TEE claims are read where the token's layout puts them:

    - top level: SGX enclaves, confidential containers and the CVM platform token (`x-ms-attestation-type`
      `sgx` / `sevsnpvm` / `tdxvm`);
    - under `x-ms-isolation-tee`: in-guest CVM attestation (`x-ms-attestation-type` = `azurevm`).

    `attestation_type` is the top-level type, `tee_type` the type of the TEE whose claims are flattened here.
    `runtime` is the top-level `x-ms-runtime` (the released key's wrapping JWKs, client payload).
    """

    kind: ClassVar[str] = "maa-token"
    issuer: str
    audience: str | list[str] | None
    issued_at: dt.datetime
    expires: dt.datetime
    attestation_type: str
    tee_type: str | None
    compliance_status: str | None
    is_debuggable: bool | None
    # SEV-SNP (x-ms-sevsnpvm-*)
    launch_measurement: str | None
    host_data: str | None
    report_data: str | None
    guest_svn: int | None
    vmpl: int | None
    id_key_digest: str | None
    author_key_digest: str | None
    # TDX (tdx_*)
    mrtd: str | None
    # SGX (x-ms-sgx-*)
    mrenclave: str | None
    mrsigner: str | None
    product_id: int | None
    svn: int | None
    enclave_held_data: str | None
    runtime: dict[str, Any] | None
    nonce: str | None
    claims: dict[str, Any]

    @property
    def debug(self) -> bool:
        """True unless the token states the TEE is not debuggable: a token silent on debuggability (an
        unknown TEE type, a custom policy that drops the claim) is treated as debug, failing closed."""
        return self.is_debuggable is not False


# field -> (claim name in the TEE's claim set, shape)
_MAA_TEE_FIELDS: dict[str, tuple[str, Shape]] = {
    "tee_type": ("x-ms-attestation-type", STRING),
    "compliance_status": ("x-ms-compliance-status", STRING),
    "launch_measurement": ("x-ms-sevsnpvm-launchmeasurement", STRING),
    "host_data": ("x-ms-sevsnpvm-hostdata", STRING),
    "report_data": ("x-ms-sevsnpvm-reportdata", STRING),
    "guest_svn": ("x-ms-sevsnpvm-guestsvn", INTEGER),
    "vmpl": ("x-ms-sevsnpvm-vmpl", INTEGER),
    "id_key_digest": ("x-ms-sevsnpvm-idkeydigest", STRING),
    "author_key_digest": ("x-ms-sevsnpvm-authorkeydigest", STRING),
    "mrtd": ("tdx_mrtd", STRING),
    "mrenclave": ("x-ms-sgx-mrenclave", STRING),
    "mrsigner": ("x-ms-sgx-mrsigner", STRING),
    "product_id": ("x-ms-sgx-product-id", INTEGER),
    "svn": ("x-ms-sgx-svn", INTEGER),
    "enclave_held_data": ("x-ms-sgx-ehd", STRING),
}


@dataclasses.dataclass(frozen=True)
class CsClaims(Claims):
    """A Confidential Space token's claims (Google, "Attestation token claims").

    Container claims come from `submods.container`, support attributes from
    `submods.confidential_space`; `google_service_accounts` is top level.
    """

    kind: ClassVar[str] = "cs-token"
    issuer: str
    audience: str | list[str]
    issued_at: dt.datetime
    expires: dt.datetime
    subject: str
    hwmodel: str
    swname: str
    swversion: list[str] | None
    dbgstat: str | None
    secboot: bool
    support_attributes: list[str] | None
    image_digest: str | None
    image_reference: str | None
    image_id: str | None
    restart_policy: str | None
    args: list[str] | None
    env: dict[str, str] | None
    cmd_override: list[str] | None
    env_override: dict[str, str] | None
    google_service_accounts: list[str] | None
    eat_nonce: str | list[str] | None
    claims: dict[str, Any]

    @property
    def debug(self) -> bool:
        """Only production images report `dbgstat: disabled-since-boot`; debug images report `enabled`,
        and a token without the claim is not known to be production, so it counts as debug."""
        return self.dbgstat != PRODUCTION_DBGSTAT


# field -> (dotted claim path, shape)
_CS_FIELDS: dict[str, tuple[str, Shape]] = {
    "swversion": ("swversion", STRINGS),
    "dbgstat": ("dbgstat", STRING),
    "support_attributes": ("submods.confidential_space.support_attributes", STRINGS),
    "image_digest": ("submods.container.image_digest", STRING),
    "image_reference": ("submods.container.image_reference", STRING),
    "image_id": ("submods.container.image_id", STRING),
    "restart_policy": ("submods.container.restart_policy", STRING),
    "args": ("submods.container.args", STRINGS),
    "env": ("submods.container.env", STRING_MAP),
    "cmd_override": ("submods.container.cmd_override", STRINGS),
    "env_override": ("submods.container.env_override", STRING_MAP),
    "google_service_accounts": ("google_service_accounts", STRINGS),
    "eat_nonce": ("eat_nonce", STRING_OR_STRINGS),
}


# --- verification ---------------------------------------------------------------------------------


def verify(
    evidence: bytes, collateral: Collateral, store: TrustStore, at: dt.datetime, *, kind: str
) -> Claims:
    """Verify an MAA (`maa-token`) or Confidential Space (`cs-token`) token as of `at`.

    `store` is unused: a token chains to no certificate root; the JWKS and the pinned issuer are its trust.
    """
    if kind not in ("maa-token", "cs-token"):
        raise VerificationError("input", f"kind {kind!r} is not a token kind: expected maa-token or cs-token")
    token = _token_text(evidence)
    header = _header(token)
    payload = _decode(token, _signing_key(collateral, header), header["alg"])
    issuer = _issuer(payload, collateral, kind)
    issued_at, expires = _times(payload, at)
    common: dict[str, Any] = {
        "anchor": issuer,
        "issuer": issuer,
        "issued_at": issued_at,
        "expires": expires,
        "claims": payload,
    }
    if kind == "maa-token":
        return _maa(payload, common)
    return _cs(payload, common)


def _token_text(evidence: bytes) -> str:
    """The compact JWS; MAA's attest response (`{"token": "<JWS>"}`) is accepted as saved."""
    text = evidence.strip()
    if text[:1] == b"{":
        token = json_object(text, "evidence starting with '{'", "structure").get("token")
        if not isinstance(token, str):
            raise VerificationError(
                "structure", 'evidence is JSON without a string "token" member: expected a compact JWS'
            )
        text = token.strip().encode("utf-8", "replace")
    try:
        token_text = text.decode("ascii")
    except UnicodeDecodeError:
        raise VerificationError("structure", "token is not ASCII text: expected a compact JWS") from None
    if token_text.count(".") != 2:
        raise VerificationError(
            "structure",
            f"token has {token_text.count('.') + 1} dot-separated segments, expected 3 (header.payload.signature)",
        )
    return token_text


def _header(token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError) as exc:
        raise VerificationError(
            "structure", f"token is not a compact JWS (base64url segments, JSON object header): {exc}"
        ) from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise VerificationError(
            "structure", f"token header alg {alg!r} is not allowed: expected {' or '.join(ALGORITHMS)}"
        )
    if "crit" in header:
        raise VerificationError(
            "structure", f"token header crit {header['crit']!r}: no critical extension is supported"
        )
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise VerificationError(
            "structure", f"token header kid {kid!r} is not a key id: expected a non-empty string"
        )
    return header


def _signing_key(collateral: Collateral, header: Mapping[str, Any]) -> jwt.PyJWK:
    """The JWKS key named by the token's `kid`, if it is fit to verify the token's algorithm."""
    jwks = collateral.document("keys")
    if jwks is None:
        raise VerificationError(
            "input",
            "no JWKS given: supply the attestation service's signing keys with --with (MAA: <issuer>/certs; "
            "Confidential Space: the jwks_uri of its discovery document)",
        )
    keys = jwks["keys"]
    if not isinstance(keys, list):
        raise VerificationError("input", f"JWKS keys is {type(keys).__name__}, expected an array of JWKs")
    kid, alg = header["kid"], header["alg"]
    matches = [key for key in keys if isinstance(key, dict) and key.get("kid") == kid]
    if not matches:
        known = sorted(str(key.get("kid")) for key in keys if isinstance(key, dict))
        raise VerificationError("signature", f"token kid {kid!r} is not in the JWKS (kids: {known})")
    if len(matches) > 1:
        raise VerificationError(
            "input", f"JWKS has {len(matches)} keys with kid {kid!r}: a key id must be unique"
        )
    jwk = matches[0]
    for name, fit in (
        ("use", jwk.get("use") in (None, "sig")),
        (
            "key_ops",
            "key_ops" not in jwk or (isinstance(jwk["key_ops"], list) and "verify" in jwk["key_ops"]),
        ),
        ("alg", jwk.get("alg") in (None, alg)),
        ("kty", jwk.get("kty") == "RSA"),
    ):
        if not fit:
            raise VerificationError(
                "chain", f"JWKS key {kid!r} has {name} {jwk.get(name)!r}: unfit to verify an {alg} signature"
            )
    try:
        return jwt.PyJWK(_with_x5c_key(jwk, kid), algorithm=alg)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise VerificationError("input", f"JWKS key {kid!r} is not a usable RSA public key ({exc})") from None


def _with_x5c_key(jwk: dict[str, Any], kid: str) -> dict[str, Any]:
    """`jwk` with `n`/`e` taken from its `x5c` certificate when it has none: MAA's `/certs` publishes each
    signing key only as a self-signed certificate (`x5c`), which PyJWT does not read. The certificate's
    validity window is not checked: the JWKS given with `--with` is the trust, not the certificate."""
    if "x5c" not in jwk:
        return jwk
    chain = jwk["x5c"]
    if not isinstance(chain, list) or not chain or not isinstance(chain[0], str):
        raise VerificationError(
            "input", f"JWKS key {kid!r} has x5c {chain!r}, expected an array of base64 DER"
        )
    try:
        public_key = x509.load_der_x509_certificate(base64.b64decode(chain[0], validate=True)).public_key()
    except (ValueError, binascii.Error) as exc:
        raise VerificationError(
            "input", f"JWKS key {kid!r}: x5c[0] is not a base64 DER certificate ({exc})"
        ) from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise VerificationError(
            "chain", f"JWKS key {kid!r}: x5c[0] holds a {type(public_key).__name__}, expected RSA"
        )
    public_jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    from_certificate = {name: public_jwk[name] for name in ("n", "e")}
    if any(name in jwk and jwk[name] != value for name, value in from_certificate.items()):
        raise VerificationError("chain", f"JWKS key {kid!r}: n/e differ from the key of its x5c certificate")
    return jwk | from_certificate


def _decode(token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
    """Signature only: PyJWT's own time checks use the wall clock, so times are checked in `_times`."""
    options = {
        "verify_signature": True,
        **{f"verify_{name}": False for name in ("exp", "nbf", "iat", "aud", "iss", "sub", "jti")},
    }
    try:
        return jwt.decode(token, key, algorithms=[alg], options=options, leeway=0)  # type: ignore[arg-type]
    except jwt.InvalidSignatureError:
        raise VerificationError(
            "signature", f"token signature does not verify with JWKS key {key.key_id!r}"
        ) from None
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError) as exc:
        raise VerificationError(
            "structure", f"token payload is not a base64url JSON object ({exc})"
        ) from None


def _issuer(payload: Mapping[str, Any], collateral: Collateral, kind: str) -> str:
    issuer: str = _claim(payload, "iss", STRING, required=True)
    discovery = collateral.document("issuer")
    pinned = discovery["issuer"] if discovery is not None else None
    if discovery is not None and not isinstance(pinned, str):
        raise VerificationError("input", f"discovery document issuer is {pinned!r}, expected a URL string")
    if kind == "cs-token":
        if issuer != CONFIDENTIAL_SPACE_ISSUER:
            raise VerificationError(
                "claims",
                f"token iss {issuer!r} is not Confidential Space's issuer {CONFIDENTIAL_SPACE_ISSUER!r}",
            )
        if pinned is not None and pinned != CONFIDENTIAL_SPACE_ISSUER:
            raise VerificationError(
                "claims",
                f"discovery document issuer {pinned!r} is not Confidential Space's issuer {CONFIDENTIAL_SPACE_ISSUER!r}",
            )
        return issuer
    if pinned is None:
        raise VerificationError(
            "claims",
            f"MAA token from {issuer!r}, but no attestation provider is pinned: supply the provider's OpenID "
            f"discovery document ({issuer}/.well-known/openid-configuration) with --with",
        )
    if issuer != pinned:
        raise VerificationError(
            "claims",
            f"token iss {issuer!r} is not the pinned attestation provider {pinned!r} (discovery document)",
        )
    return issuer


def _instant(payload: Mapping[str, Any], name: str) -> dt.datetime | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise VerificationError(
            "claims", f"claim {name} is {value!r}, expected seconds since the epoch (a number)"
        )
    try:
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise VerificationError("claims", f"claim {name} is {value!r}: not a representable time") from None


def _times(payload: Mapping[str, Any], at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """`exp`/`nbf`/`iat` against the verification time, no leeway: `at` is the one clock."""
    issued_at, expires, not_before = (_instant(payload, name) for name in ("iat", "exp", "nbf"))
    if issued_at is None or expires is None:
        raise VerificationError(
            "claims", f"token has no {'iat' if issued_at is None else 'exp'} claim: it is required"
        )
    when = at.isoformat()
    if expires <= at:
        raise VerificationError(
            "validity", f"token expired at {expires.isoformat()} (exp); verification time {when}"
        )
    if not_before is not None and at < not_before:
        raise VerificationError(
            "validity", f"token not valid before {not_before.isoformat()} (nbf); verification time {when}"
        )
    if at < issued_at:
        raise VerificationError(
            "validity", f"token issued at {issued_at.isoformat()} (iat), after the verification time {when}"
        )
    return issued_at, expires


def _maa(payload: dict[str, Any], common: dict[str, Any]) -> MaaClaims:
    prefix = "x-ms-isolation-tee." if _claim(payload, "x-ms-isolation-tee", OBJECT) is not None else ""
    fields = {
        name: _claim(payload, prefix + claim, shape) for name, (claim, shape) in _MAA_TEE_FIELDS.items()
    }
    debug_claim = _MAA_DEBUG_CLAIM.get(fields["tee_type"])
    return MaaClaims(
        **common,
        **fields,
        audience=_claim(payload, "aud", STRING_OR_STRINGS),
        attestation_type=_claim(payload, "x-ms-attestation-type", STRING, required=True),
        is_debuggable=_claim(payload, prefix + debug_claim, BOOLEAN) if debug_claim else None,
        runtime=_claim(payload, "x-ms-runtime", OBJECT),
        nonce=_claim(payload, "nonce", STRING),
    )


def _cs(payload: dict[str, Any], common: dict[str, Any]) -> CsClaims:
    return CsClaims(
        **common,
        **{name: _claim(payload, path, shape) for name, (path, shape) in _CS_FIELDS.items()},
        audience=_claim(payload, "aud", STRING_OR_STRINGS, required=True),
        subject=_claim(payload, "sub", STRING, required=True),
        hwmodel=_claim(payload, "hwmodel", STRING, required=True),
        swname=_claim(payload, "swname", STRING, required=True),
        secboot=_claim(payload, "secboot", BOOLEAN, required=True),
    )
