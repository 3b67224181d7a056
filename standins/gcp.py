"""Stand-ins for GCP STS (Workload Identity Federation token exchange) and Cloud KMS, on loopback HTTP.

STS checks a Confidential Space token as Google's would: the signature against a JWKS standing in for
Google's Confidential Space signer, the validity times, then the recorded pool provider's issuer,
audiences, CEL attribute condition and attribute mapping (`policies.review.key_release.gcp.exchange`,
the review's own evaluator). KMS identifies the caller by its Bearer token (a federated identity STS
issued, or a plain test credential of a named principal) and authorizes with the key's recorded IAM
members (`gcp.decrypt_allowed` / `gcp.encrypt_allowed`). Nothing is regenerated: editing the recorded
condition or an IAM member changes the decision.

Wire shapes follow the REST references: STS `POST /v1/token`
(https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token) and KMS
`cryptoKeys.encrypt`/`decrypt` (https://cloud.google.com/kms/docs/reference/rest/v1/
projects.locations.keyRings.cryptoKeys/decrypt), int64 CRC32C fields as JSON strings.

Run `python -m standins.gcp --stack dev` to start both and print their URLs.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import datetime as dt
import os
import re
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Final, Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from enclave_runtime import attest
from enclave_runtime.attest.tokens import CONFIDENTIAL_SPACE_ISSUER
from enclave_runtime.keyrelease import WrappedKey, retry
from enclave_runtime.keyrelease import gcp as client
from enclave_runtime.simulate.tokens import SimulatedConfidentialSpace, TokenIssuer
from policies.review.key_release import claims as sim_claims
from policies.review.key_release import gcp
from policies.review.key_release.aws import PolicyError
from policies.review.key_release.simulate import gcp_bindings, gcp_providers, gcp_workloads
from policies.review.mocks import Recording
from standins.cloud import CASES
from standins.server import Request, Response, Running, json_response, wait_for_interrupt
from standins.stack import PartyKey, party_keys

TOKEN_EXCHANGE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"
SUBJECT_TOKEN_TYPES: Final = frozenset(
    {"urn:ietf:params:oauth:token-type:jwt", "urn:ietf:params:oauth:token-type:id_token"}
)
ACCESS_TOKEN_LIFETIME: Final = 3600  # STS federated tokens live one hour (token-exchange response expires_in)
_PROVIDER_AUDIENCE = re.compile(
    r"^//iam\.googleapis\.com/projects/(?P<number>[0-9]+)/locations/global/"
    r"workloadIdentityPools/(?P<pool>[^/]+)/providers/(?P<provider>[^/]+)$"
)
_KMS_PATH = re.compile(r"^/v1/(?P<name>projects/[^:?]+/cryptoKeys/[^/:?]+):(?P<op>encrypt|decrypt)(?:\?.*)?$")
PROTECTION_LEVELS: Final = {"SOFTWARE": 1, "HSM": 2, "EXTERNAL": 3, "EXTERNAL_VPC": 4}


def _describe(caller: gcp.FederatedIdentity | str) -> str:
    if isinstance(caller, str):
        return caller
    attributes = ", ".join(f"attribute.{k}={v}" for k, v in sorted(caller.attributes.items()))
    return (
        f"principal://iam.googleapis.com/projects/{caller.project_number}/locations/global/workloadIdentityPools/"
        f"{caller.pool_id}/subject/{caller.subject} ({attributes or 'no attributes'})"
    )


@dataclass
class AccessTokens:
    """Bearer tokens the KMS stand-in accepts: STS-issued (federated) and plain test credentials."""

    now: Callable[[], float] = time.time
    _tokens: dict[str, tuple[gcp.FederatedIdentity | str, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def issue(self, caller: gcp.FederatedIdentity | str, lifetime: int = ACCESS_TOKEN_LIFETIME) -> str:
        token = "ya29.standin-" + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = (caller, self.now() + lifetime)
        return token

    def caller(self, token: str) -> gcp.FederatedIdentity | str | None:
        with self._lock:
            found = self._tokens.get(token)
        if found is None or found[1] <= self.now():
            return None
        return found[0]


def _oauth_error(error: str, description: str) -> Response:
    return json_response(400, {"error": error, "error_description": description})


def _condition_diagnosis(claims: Mapping[str, Any]) -> str:
    """The claims an attribute condition usually tests, so a refusal says what the token carried."""
    submods = claims.get("submods") if isinstance(claims.get("submods"), Mapping) else {}
    container = submods.get("container") if isinstance(submods.get("container"), Mapping) else {}
    space = (
        submods.get("confidential_space") if isinstance(submods.get("confidential_space"), Mapping) else {}
    )
    shown = {
        "swname": claims.get("swname"),
        "dbgstat": claims.get("dbgstat"),
        "hwmodel": claims.get("hwmodel"),
        "secboot": claims.get("secboot"),
        "support_attributes": space.get("support_attributes"),
        "image_digest": container.get("image_digest"),
        "google_service_accounts": claims.get("google_service_accounts"),
    }
    return ", ".join(f"{k}={v!r}" for k, v in shown.items())


class StsStandIn:
    """`POST /v1/token`: RFC 8693 token exchange of a Confidential Space token for a federated access token."""

    def __init__(
        self,
        providers: Sequence[gcp.Provider],
        jwks: Mapping[str, Any],
        tokens: AccessTokens,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
    ) -> None:
        self.providers = list(providers)
        self.jwks = dict(jwks)
        self.tokens = tokens
        self.clock = clock
        self.exchanged = 0  # successful exchanges (a test counts fresh evidence per unwrap)

    def _provider(self, audience: str) -> gcp.Provider | None:
        found = _PROVIDER_AUDIENCE.match(audience)
        if found is None:
            return None
        return next(
            (
                p
                for p in self.providers
                if (p.project_number, p.pool_id, p.provider_id)
                == (found["number"], found["pool"], found["provider"])
            ),
            None,
        )

    def handle(self, request: Request) -> Response:
        if request.method != "POST" or request.path.split("?")[0] != "/v1/token":
            return json_response(
                404, {"error": "not_found", "error_description": f"no route {request.method} {request.path}"}
            )
        form = {k: v[0] for k, v in urllib.parse.parse_qs(request.body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != TOKEN_EXCHANGE:
            return _oauth_error(
                "unsupported_grant_type", f"grant_type {form.get('grant_type')!r} is not {TOKEN_EXCHANGE}"
            )
        if form.get("subject_token_type") not in SUBJECT_TOKEN_TYPES:
            return _oauth_error(
                "invalid_request",
                f"subject_token_type {form.get('subject_token_type')!r} is not one of {sorted(SUBJECT_TOKEN_TYPES)}",
            )
        if form.get("requested_token_type", ACCESS_TOKEN_TYPE) != ACCESS_TOKEN_TYPE:
            return _oauth_error(
                "invalid_request",
                f"requested_token_type {form.get('requested_token_type')!r} is not {ACCESS_TOKEN_TYPE}",
            )
        audience = form.get("audience", "")
        provider = self._provider(audience)
        if provider is None:
            known = [
                f"//iam.googleapis.com/projects/{p.project_number}/locations/global/workloadIdentityPools/{p.pool_id}/providers/{p.provider_id}"
                for p in self.providers
            ]
            return _oauth_error(
                "invalid_target",
                f"audience {audience!r} names no workload identity pool provider (known: {known})",
            )
        subject = form.get("subject_token", "")
        try:
            verified = attest.verify(
                "cs-token",
                subject.encode(),
                collateral=attest.Collateral(documents=[self.jwks]),
                at=self.clock(),
            )
        except attest.VerificationError as error:
            return _oauth_error("invalid_grant", f"subject_token rejected ({error.check}): {error.message}")
        claims: dict[str, Any] = dict(verified.claims)  # type: ignore[attr-defined]
        try:
            identity = gcp.exchange(provider, claims)
        except PolicyError as error:
            return _oauth_error("invalid_grant", f"provider {provider.provider_id}: {error}")
        if identity is None:
            return _oauth_error("invalid_grant", self._refusal(provider, claims))
        self.exchanged += 1
        return json_response(
            200,
            {
                "access_token": self.tokens.issue(identity),
                "issued_token_type": ACCESS_TOKEN_TYPE,
                "token_type": "Bearer",
                "expires_in": ACCESS_TOKEN_LIFETIME,
            },
        )

    @staticmethod
    def _refusal(provider: gcp.Provider, claims: Mapping[str, Any]) -> str:
        """Which check `gcp.exchange` failed, in STS's words where known (it decided; this only explains)."""
        if not gcp._same_issuer(provider.issuer, claims.get("iss")):
            return f"The issuer {claims.get('iss')!r} of the subject token does not match the provider's issuer {provider.issuer!r}."
        allowed = list(provider.allowed_audiences) or ["(the provider's own resource name)"]
        audience = claims.get("aud")
        if not any(a in allowed for a in (audience if isinstance(audience, list) else [audience])):
            return f"The audience {audience!r} in the subject token does not match the provider's allowed audiences {allowed}."
        if provider.condition is not None and not gcp.evaluate_condition(provider.condition, claims):
            return (
                f"The given credential is rejected by the attribute condition of provider {provider.provider_id!r} "
                f"(token: {_condition_diagnosis(claims)})."
            )
        return f"The attribute mapping of provider {provider.provider_id!r} cannot be computed from the subject token."


def _b64(value: Any, field_name: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{field_name} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError(f"{field_name} is not valid base64") from None


def _kms_error(code: int, status: str, message: str) -> Response:
    return json_response(code, {"error": {"code": code, "message": message, "status": status}})


class KmsStandIn:
    """`POST /v1/{cryptoKey}:encrypt|:decrypt`, authorized by the key's recorded IAM members."""

    def __init__(self, recording: Recording, tokens: AccessTokens) -> None:
        self.keys: dict[str, PartyKey] = {
            str(k.resource.outputs.get("id")): k for k in party_keys(recording) if k.cloud == "gcp"
        }
        self.recording = recording
        self.tokens = tokens
        self._aead: dict[str, AESGCM] = {}
        self._lock = threading.Lock()
        self.decrypted = 0

    def _cipher(self, name: str) -> AESGCM:
        with self._lock:
            if name not in self._aead:
                self._aead[name] = AESGCM(AESGCM.generate_key(bit_length=256))
            return self._aead[name]

    def handle(self, request: Request) -> Response:
        found = _KMS_PATH.match(request.path)
        if request.method != "POST" or found is None:
            return _kms_error(404, "NOT_FOUND", f"no route {request.method} {request.path}")
        name, op = urllib.parse.unquote(found["name"]), found["op"]
        auth = request.headers.get("authorization", "")
        caller = self.tokens.caller(auth[len("Bearer ") :]) if auth.startswith("Bearer ") else None
        if caller is None:
            return _kms_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
                "other valid authentication credential.",
            )
        key = self.keys.get(name)
        if key is None:
            return _kms_error(404, "NOT_FOUND", f"{name} not found (known keys: {sorted(self.keys)}).")
        bindings = gcp_bindings(self.recording, key.resource)
        if op == "decrypt":
            allowed = (
                gcp.decrypt_allowed(bindings, caller)
                if isinstance(caller, gcp.FederatedIdentity)
                else gcp.direct_release(bindings, [caller.removeprefix("serviceAccount:")])
                if caller.startswith("serviceAccount:")
                else any(
                    b.role in gcp.DECRYPTING_ROLES and b.member in {caller, *gcp.PUBLIC_MEMBERS}
                    for b in bindings
                )
            )
        else:
            allowed = gcp.encrypt_allowed(bindings, caller)
        if not allowed:
            permission = "useToDecrypt" if op == "decrypt" else "useToEncrypt"
            roles = gcp.DECRYPTING_ROLES if op == "decrypt" else gcp.ENCRYPTING_ROLES
            members = sorted({b.member for b in bindings if b.role in roles})
            return _kms_error(
                403,
                "PERMISSION_DENIED",
                f"Permission 'cloudkms.cryptoKeyVersions.{permission}' denied on resource '{name}' (or it may not "
                f"exist). Caller {_describe(caller)} matches none of the key's members with that permission: {members}.",
            )
        body = request.json()
        if not isinstance(body, dict):
            return _kms_error(400, "INVALID_ARGUMENT", "request body must be a JSON object")
        try:
            return self._encrypt(name, key, body) if op == "encrypt" else self._decrypt(name, key, body)
        except ValueError as error:
            return _kms_error(400, "INVALID_ARGUMENT", str(error))

    @staticmethod
    def _crc(body: Mapping[str, Any], field_name: str, data: bytes) -> bool:
        """Check an optional request checksum; True when one was given and matched."""
        if field_name not in body:
            return False
        if str(client.crc32c(data)) != str(body[field_name]):
            raise ValueError(
                f"The checksum in field {field_name} did not match the data in field {field_name.removesuffix('Crc32c')}."
            )
        return True

    def _protection(self, key: PartyKey) -> int:
        template = key.resource.properties.get("versionTemplate") or {}
        level = template.get("protectionLevel", "SOFTWARE") if isinstance(template, Mapping) else "SOFTWARE"
        return PROTECTION_LEVELS.get(str(level), 1)

    @staticmethod
    def _aad(name: str, body: Mapping[str, Any]) -> bytes:
        extra = (
            _b64(body["additionalAuthenticatedData"], "additionalAuthenticatedData")
            if "additionalAuthenticatedData" in body
            else b""
        )
        return name.encode() + b"\x00" + extra

    def _encrypt(self, name: str, key: PartyKey, body: Mapping[str, Any]) -> Response:
        plaintext = _b64(body.get("plaintext"), "plaintext")
        verified = self._crc(body, "plaintextCrc32c", plaintext)
        aad = self._aad(name, body)
        nonce = os.urandom(12)
        ciphertext = nonce + self._cipher(name).encrypt(nonce, plaintext, aad)
        return json_response(
            200,
            {
                "name": f"{name}/cryptoKeyVersions/1",
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "ciphertextCrc32c": str(client.crc32c(ciphertext)),
                "verifiedPlaintextCrc32c": verified,
                "verifiedAdditionalAuthenticatedDataCrc32c": False,
                "protectionLevel": self._protection(key),
            },
        )

    def _decrypt(self, name: str, key: PartyKey, body: Mapping[str, Any]) -> Response:
        ciphertext = _b64(body.get("ciphertext"), "ciphertext")
        self._crc(body, "ciphertextCrc32c", ciphertext)
        try:
            plaintext = self._cipher(name).decrypt(ciphertext[:12], ciphertext[12:], self._aad(name, body))
        except (InvalidTag, ValueError):
            raise ValueError("Decryption failed: the ciphertext is invalid.") from None
        self.decrypted += 1
        return json_response(
            200,
            {
                "plaintext": base64.b64encode(plaintext).decode(),
                "plaintextCrc32c": str(client.crc32c(plaintext)),
                "usedPrimary": True,
                "protectionLevel": self._protection(key),
            },
        )


class UnattestedProbe:
    """DEMO-ONLY probe, never reachable from `GcpReleaser`: the workload's own service account calls KMS
    `decrypt` directly with a plain access token, no attestation, no STS. The stack must refuse it."""

    cloud: Final = "gcp"

    def __init__(self, kms_url: str, token: str, backoff: retry.Backoff) -> None:
        import google.oauth2.credentials

        self._client = client._client(google.oauth2.credentials.Credentials(token=token), kms_url)
        self._backoff = backoff

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        request = {"name": wrapped.key_id, "ciphertext": wrapped.blob}
        response = retry.call(
            lambda: client._kms_call(lambda: self._client.decrypt(request=request, retry=None, timeout=10.0)),
            self._backoff,
        )
        return bytes(response.plaintext)


class GcpStandIns:
    """STS and KMS stand-ins for one recording, plus the party wrappers and simulated workloads of `CASES`."""

    cloud: Final = "gcp"

    def __init__(
        self,
        recording: Recording,
        image_digests: Sequence[str],
        *,
        issuer: TokenIssuer | None = None,
        backoff: retry.Backoff = retry.Backoff(),
    ) -> None:
        if not image_digests:
            raise ValueError(
                "no approved Confidential Space image digests: set measurements.confidential_space.image_digests"
            )
        self.recording = recording
        self.image_digests = list(image_digests)
        self.backoff = backoff
        # Stands in for Google's Confidential Space signer: STS trusts exactly this JWKS.
        self.issuer = issuer or TokenIssuer(CONFIDENTIAL_SPACE_ISSUER, kid="ccp-simulated-confidential-space")
        self.tokens = AccessTokens()
        self.sts_service = StsStandIn(gcp_providers(recording), self.issuer.jwks(), self.tokens)
        self.kms_service = KmsStandIn(recording, self.tokens)
        self.sts = Running(self.sts_service.handle)
        try:
            self.kms = Running(self.kms_service.handle)
        except Exception:
            self.sts.stop()
            raise

    @classmethod
    def for_stack(
        cls, stack: str, report: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> "GcpStandIns":
        """Stand-ins for `stack`: its review report (default `out/review-STACK.json`) and its approved digests."""
        from standins.stack import load

        return cls(load(report or stack), approved_image_digests(stack), **kwargs)

    # --- credentials ---------------------------------------------------------------------------------

    def user_token(self, principal: str) -> str:
        """A plain access token for an IAM principal (`group:...`, `user:...`, `serviceAccount:...`): the
        stand-in of a user or service-account credential, no attestation behind it."""
        if not re.match(r"^(user|group|serviceAccount|domain):.+", principal):
            raise ValueError(
                f"principal {principal!r} is not an IAM member of the form user:|group:|serviceAccount:..."
            )
        return self.tokens.issue(principal)

    def owner(self, key: PartyKey) -> str:
        """The key's data owner: the (non-federated) member granted an encrypting role in the recording."""
        for binding in gcp_bindings(self.recording, key.resource):
            if binding.role in gcp.ENCRYPTING_ROLES and ":" in binding.member and "//" not in binding.member:
                return binding.member
        raise LookupError(
            f"key {key.resource.outputs.get('id')} grants no user/group/service account an encrypting role"
        )

    def federation(self, key: PartyKey) -> client.Federation:
        """The pool provider the key's decrypting member names (else the first Confidential Space provider)."""
        providers = [
            p for p in self.sts_service.providers if gcp._same_issuer(p.issuer, CONFIDENTIAL_SPACE_ISSUER)
        ]
        if not providers:
            raise LookupError(
                "the recording has no workload identity pool provider for Confidential Space tokens"
            )
        members = [
            b.member for b in gcp_bindings(self.recording, key.resource) if b.role in gcp.DECRYPTING_ROLES
        ]
        chosen = next(
            (
                p
                for p in providers
                if any(
                    f"/projects/{p.project_number}/locations/global/workloadIdentityPools/{p.pool_id}/" in m
                    for m in members
                )
            ),
            providers[0],
        )
        return client.Federation(
            chosen.project_number, chosen.pool_id, chosen.provider_id, token_url=f"{self.sts.url}/v1/token"
        )

    # --- CloudStandIns ------------------------------------------------------------------------------

    def wrapper(self, key: PartyKey) -> client.GcpWrapper:
        import google.oauth2.credentials

        credentials = google.oauth2.credentials.Credentials(token=self.user_token(self.owner(key)))
        return client.GcpWrapper(
            str(key.resource.outputs["id"]), credentials, api_endpoint=self.kms.url, backoff=self.backoff
        )

    def workload(self, case: str, **overrides: Any) -> SimulatedConfidentialSpace:
        """The simulated Confidential Space VM of `case` (the recorded workload, or another one)."""
        workloads = gcp_workloads(self.recording)
        if not workloads:
            raise LookupError(
                "the recording has no Confidential Space VM (instance or template with tee-image-reference)"
            )
        w = workloads[0]
        common = dict(
            issuer=self.issuer,
            image_digest=self.image_digests[0],
            service_accounts=[w.service_account],
            hwmodel=w.hwmodel,
            project=w.project,
            project_number=w.project_number,
            zone=w.zone,
        )
        if case == "debug":
            common["debug"] = True
        elif case == "unapproved-image":
            common["image_digest"] = sim_claims.other_image_digest("unapproved")
        elif case == "other-collaboration":
            common.update(
                project=sim_claims.OTHER_GCP_PROJECT,
                project_number=sim_claims.OTHER_GCP_PROJECT_NUMBER,
                service_accounts=[f"workload@{sim_claims.OTHER_GCP_PROJECT}.iam.gserviceaccount.com"],
            )
        elif case != "approved":
            raise ValueError(f"case {case!r} has no simulated workload (cases: {list(CASES)})")
        return SimulatedConfidentialSpace(**(common | overrides))  # type: ignore[arg-type]

    def releaser(self, key: PartyKey, case: str, **overrides: Any) -> client.GcpReleaser | UnattestedProbe:
        if case == "unattested":
            account = self.workload("approved").service_accounts[0]
            return UnattestedProbe(self.kms.url, self.user_token(f"serviceAccount:{account}"), self.backoff)
        return client.GcpReleaser(
            self.federation(key),
            self.workload(case, **overrides),
            api_endpoint=self.kms.url,
            backoff=self.backoff,
        )

    def stop(self) -> None:
        self.sts.stop()
        self.kms.stop()

    def __enter__(self) -> "GcpStandIns":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def approved_image_digests(stack: str) -> list[str]:
    """The stack's approved Confidential Space image digests, from its measurements config (not from the
    generated condition, so a condition that lost a digest is caught)."""
    from policies.review import project
    from policies.review.run import REPO_ROOT, ccp_settings

    settings = ccp_settings(project.load(REPO_ROOT, stack))
    section = settings.collaboration.measurements.confidential_space if settings is not None else None
    return list(section.image_digests) if section is not None else []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m standins.gcp", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stack", default="dev", help="stack whose review report (out/review-STACK.json) to enforce"
    )
    parser.add_argument("--report", help="a review report path instead of out/review-STACK.json")
    args = parser.parse_args(argv)
    with GcpStandIns.for_stack(args.stack, args.report) as standins:
        print(f"GCP STS stand-in:       {standins.sts.url}/v1/token")
        print(f"Cloud KMS stand-in:     {standins.kms.url}  (api_endpoint)")
        for name, key in sorted(standins.kms_service.keys.items()):
            print(f"  key {name}  party {key.party}")
            print(
                f"    owner (wraps):       {standins.owner(key)}  token {standins.user_token(standins.owner(key))}"
            )
            print(f"    STS audience:        {standins.federation(key).audience}")
        print(f"Confidential Space signer JWKS (STS trusts it): {json.dumps(standins.issuer.jwks())}")
        wait_for_interrupt()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
