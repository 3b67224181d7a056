"""A simulated attestation service for dev and tests: MAA- and Confidential Space-shaped tokens.

No genuine signed MAA or Confidential Space token with a matching JWKS exists offline, so tests sign tokens
with a local RSA key in the services' documented claim layouts (Microsoft, "Examples of an attestation
token" and "Claim sets"; Google, "Attestation token claims"). The verifier trusts them only when given this
issuer's `jwks()` (and, for MAA, its `discovery()`) as collateral, exactly as it would the real services'.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from jwt.algorithms import RSAAlgorithm

from enclave_runtime.attest.tokens import CONFIDENTIAL_SPACE_ISSUER
from enclave_runtime.simulate.ca import issue, rsa_key

# An MAA provider's issuer has the form https://<name>.<short region>.attest.azure.net.
SIMULATED_MAA_ISSUER = "https://simulated-maa.ccp.invalid"  # .invalid (RFC 2606): can never be a real provider

MAA_LIFETIME = dt.timedelta(hours=8)  # MAA's default token validity (exp - iat in Microsoft's samples)
CS_LIFETIME = dt.timedelta(hours=1)  # the launcher refreshes the default token hourly
CS_AUDIENCE = "https://sts.googleapis.com"  # the default token's audience
# x-ms-policy-hash is BASE64URL(SHA256(UTF8(BASE64URL(UTF8(policy text))))) ("Claim sets").
POLICY_HASH = (
    base64.urlsafe_b64encode(
        hashlib.sha256(
            base64.urlsafe_b64encode(b"version=1.0; authorizationrules{=> permit();};").rstrip(b"=")
        ).digest()
    )
    .rstrip(b"=")
    .decode()
)


def stand_in(label: str, hex_chars: int) -> str:
    """A deterministic lowercase-hex value of the length a measurement field has."""
    return hashlib.shake_256(f"ccp-simulated-token:{label}".encode()).hexdigest(hex_chars // 2)


def _merge(base: dict[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """`base` with `overrides` applied; an override of None removes the claim (to issue a token without it)."""
    merged = dict(base)
    for name, value in (overrides or {}).items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def confidential_space_payload(
    image_digest: str,
    service_accounts: Sequence[str],
    hwmodel: str,
    *,
    debug: bool = False,
    project: str = "ccp-workload",
    project_number: str = "123456789012",
    zone: str = "europe-west4-a",
) -> dict[str, Any]:
    """A Confidential Space token's claims without its times, in Google's documented shape ("Attestation
    token claims"). The one builder: the simulated launcher signs it, and the GCP policy rule judges
    generated conditions against it. Production images report `dbgstat: disabled-since-boot` and
    `support_attributes`; debug images `dbgstat: enabled` and none. Instance values are stand-ins."""
    submods: dict[str, Any] = {
        "container": {
            "image_reference": f"europe-docker.pkg.dev/ccp-workload/images/workload@{image_digest}",
            "image_digest": image_digest,
            "restart_policy": "Never",
            "image_id": f"sha256:{stand_in('image-id', 64)}",
            "env": {"HOSTNAME": "ccp-workload"},
            "args": ["/workload", "--serve"],
        },
        "gce": {
            "zone": zone,
            "project_id": project,
            "project_number": project_number,
            "instance_name": "ccp-workload",
            "instance_id": "4242424242424242424",
        },
    }
    if not debug:
        submods["confidential_space"] = {"support_attributes": ["LATEST", "STABLE", "USABLE"]}
    return {
        "iss": CONFIDENTIAL_SPACE_ISSUER,
        "aud": CS_AUDIENCE,
        "sub": f"https://www.googleapis.com/compute/v1/projects/{project}/zones/{zone}/instances/ccp-workload",
        "eat_nonce": [stand_in("eat-nonce", 32)],
        "secboot": True,
        "oemid": 11129,
        "hwmodel": hwmodel,
        "swname": "CONFIDENTIAL_SPACE",
        "swversion": ["250301"],
        "dbgstat": "enabled" if debug else "disabled-since-boot",
        "submods": submods,
        "google_service_accounts": list(service_accounts),
    }


class TokenIssuer:
    """One signing key, published as a JWKS under `issuer`, issuing tokens in the documented layouts."""

    def __init__(self, issuer: str = SIMULATED_MAA_ISSUER, *, kid: str = "ccp-simulated-signer") -> None:
        self.issuer = issuer
        self.kid = kid
        self.key = rsa_key()

    def jwks(self, *, x5c: bool = False) -> dict[str, Any]:
        """The JWKS a verifier is given with `--with`. `x5c`: as MAA's `/certs` publishes it, the key only
        as a self-signed certificate named after the issuer; otherwise as an `n`/`e` JWK (Google's form)."""
        if x5c:
            now = dt.datetime.now(dt.timezone.utc)
            certificate = issue(
                self.issuer,
                self.key,
                None,
                ca=False,
                not_before=now - dt.timedelta(days=1),
                not_after=now + dt.timedelta(days=365),
                hash_alg=hashes.SHA256(),
            )
            entry = {"kty": "RSA", "kid": self.kid, "x5c": [base64.b64encode(certificate.der()).decode()]}
            return {"keys": [entry]}
        public = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": self.kid,
                    "n": public["n"],
                    "e": public["e"],
                }
            ]
        }

    def discovery(self) -> dict[str, Any]:
        """The OpenID discovery document (`<issuer>/.well-known/openid-configuration`) that pins the issuer."""
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/certs",
            "response_types_supported": ["token", "none"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "revocation_endpoint": f"{self.issuer}/revoke",
        }

    def sign(self, payload: Mapping[str, Any], *, headers: Mapping[str, Any] | None = None) -> str:
        """`payload` as a compact RS256 JWS under this issuer's key (header `kid` unless overridden)."""
        return jwt.encode(
            dict(payload), self.key, algorithm="RS256", headers={"kid": self.kid, **(headers or {})}
        )

    def _times(self, at: dt.datetime | None, lifetime: dt.timedelta) -> dict[str, int]:
        issued = int((at or dt.datetime.now(dt.timezone.utc)).timestamp())
        return {"iat": issued, "nbf": issued, "exp": issued + int(lifetime.total_seconds())}

    def _maa(self, body: dict[str, Any], claims: Mapping[str, Any] | None, at: dt.datetime | None) -> str:
        base = {
            **self._times(at, MAA_LIFETIME),
            "iss": self.issuer,
            "jti": stand_in(f"jti-{at}", 64),
            "x-ms-policy-hash": POLICY_HASH,
            "x-ms-ver": "1.0",
        }
        return self.sign(_merge(base | body, claims), headers={"jku": f"{self.issuer}/certs"})

    def maa_snp(
        self,
        *,
        nested: bool = True,
        debug: bool = False,
        tee: Mapping[str, Any] | None = None,
        claims: Mapping[str, Any] | None = None,
        at: dt.datetime | None = None,
    ) -> str:
        """An MAA token for an AMD SEV-SNP TEE.

        `nested` (default): in-guest CVM attestation, top-level `x-ms-attestation-type` = `azurevm` and the
        hardware claims under `x-ms-isolation-tee`. Otherwise the top-level layout of confidential
        containers and of the CVM platform token. `tee` overrides the hardware claims (where they live),
        `claims` the top-level ones; an override of None removes the claim.
        """
        hardware = _merge(
            {
                "x-ms-attestation-type": "sevsnpvm",
                "x-ms-compliance-status": "azure-compliant-cvm" if nested else "azure-compliant-uvm",
                "x-ms-sevsnpvm-authorkeydigest": "0" * 96,
                "x-ms-sevsnpvm-bootloader-svn": 3,
                "x-ms-sevsnpvm-familyId": "01000000000000000000000000000000",
                "x-ms-sevsnpvm-guestsvn": 1,
                "x-ms-sevsnpvm-hostdata": stand_in("hostdata", 64),
                "x-ms-sevsnpvm-idkeydigest": stand_in("idkeydigest", 96),
                "x-ms-sevsnpvm-imageId": "02000000000000000000000000000000",
                "x-ms-sevsnpvm-is-debuggable": debug,
                "x-ms-sevsnpvm-launchmeasurement": stand_in("launchmeasurement", 96),
                "x-ms-sevsnpvm-microcode-svn": 115,
                "x-ms-sevsnpvm-migration-allowed": False,
                "x-ms-sevsnpvm-reportdata": stand_in("reportdata", 64) + "0" * 64,
                "x-ms-sevsnpvm-reportid": stand_in("reportid", 64),
                "x-ms-sevsnpvm-smt-allowed": True,
                "x-ms-sevsnpvm-snpfw-svn": 8,
                "x-ms-sevsnpvm-tee-svn": 0,
                "x-ms-sevsnpvm-vmpl": 0,
            },
            tee,
        )
        runtime = {
            "keys": [
                {
                    "kid": "TpmEphemeralEncryptionKey",
                    "key_ops": ["encrypt"],
                    "kty": "RSA",
                    "e": "AQAB",
                    "n": stand_in("tpm-ephemeral-n", 512),
                }
            ],
            "client-payload": {"nonce": stand_in("nonce", 32)},
        }
        if nested:
            body = {
                "x-ms-attestation-type": "azurevm",
                "x-ms-azurevm-vmid": stand_in("vmid", 32),
                "x-ms-isolation-tee": hardware,
                "x-ms-runtime": runtime,
            }
        else:
            body = hardware | {"x-ms-runtime": runtime}
        return self._maa(body, claims, at)

    def maa_sgx(
        self, *, debug: bool = False, claims: Mapping[str, Any] | None = None, at: dt.datetime | None = None
    ) -> str:
        """An MAA token for an SGX enclave: its claims are top level (recommended, non-deprecated names)."""
        body = {
            "x-ms-attestation-type": "sgx",
            "x-ms-sgx-is-debuggable": debug,
            "x-ms-sgx-mrenclave": stand_in("mrenclave", 64),
            "x-ms-sgx-mrsigner": stand_in("mrsigner", 64),
            "x-ms-sgx-product-id": 1,
            "x-ms-sgx-svn": 2,
            "x-ms-sgx-ehd": base64.urlsafe_b64encode(bytes.fromhex(stand_in("ehd", 64)))
            .rstrip(b"=")
            .decode(),
            "x-ms-sgx-collateral": {
                name: stand_in(name, 64)
                for name in (
                    "qeidcertshash",
                    "qeidcrlhash",
                    "qeidhash",
                    "quotehash",
                    "tcbinfocertshash",
                    "tcbinfocrlhash",
                    "tcbinfohash",
                )
            },
        }
        return self._maa(body, claims, at)

    def confidential_space(
        self,
        *,
        debug: bool = False,
        image_digest: str | None = None,
        claims: Mapping[str, Any] | None = None,
        at: dt.datetime | None = None,
        service_accounts: Sequence[str] = ("ccp-workload@ccp-workload.iam.gserviceaccount.com",),
        hwmodel: str = "GCP_AMD_SEV",
        project: str = "ccp-workload",
        project_number: str = "123456789012",
        zone: str = "europe-west4-a",
    ) -> str:
        """A Confidential Space token (default STS audience). Debug images report `dbgstat: enabled` and no
        `support_attributes`. `claims` overrides top-level claims; None removes one. Signed under this
        issuer's key, but `iss` is Google's unless overridden: the verifier pins Google's issuer.
        `service_accounts`, `hwmodel`, `project*` and `zone` describe the VM (google_service_accounts,
        hwmodel, submods.gce), so a stand-in can present a particular recorded workload."""
        digest = image_digest or f"sha256:{stand_in('image', 64)}"
        body = {
            **self._times(at, CS_LIFETIME),
            **confidential_space_payload(
                digest, service_accounts, hwmodel, debug=debug, project=project, project_number=project_number, zone=zone
            ),
        }
        return self.sign(_merge(body, claims))


@dataclass
class SimulatedConfidentialSpace:
    """A simulated Confidential Space launcher: `token(audience)` as the workload's evidence source.

    It stands in for the launcher's token server (google/go-tpm-tools launcher/teeserver; Google,
    "Attestation token claims"): each call signs a fresh token for `audience` with a fresh `eat_nonce`,
    kept only in memory (the releaser hands it to STS through a supplier, never a file). `debug` is a
    debug image (`dbgstat: enabled`, no support attributes); `claims` overrides top-level claims.
    """

    issuer: TokenIssuer
    image_digest: str
    service_accounts: Sequence[str]
    hwmodel: str = "GCP_AMD_SEV"
    project: str = "ccp-workload"
    project_number: str = "123456789012"
    zone: str = "europe-west4-a"
    debug: bool = False
    claims: Mapping[str, Any] = field(default_factory=dict)
    issued: int = 0  # tokens signed so far (a test counts fresh evidence)

    def token(self, audience: str) -> bytes:
        self.issued += 1
        nonce = hashlib.sha256(f"{self.image_digest}:{self.issued}:{dt.datetime.now().timestamp()}".encode())
        return self.issuer.confidential_space(
            debug=self.debug,
            image_digest=self.image_digest,
            claims={"aud": audience, "eat_nonce": [nonce.hexdigest()[:32]], **dict(self.claims)},
            service_accounts=self.service_accounts,
            hwmodel=self.hwmodel,
            project=self.project,
            project_number=self.project_number,
            zone=self.zone,
        ).encode()
