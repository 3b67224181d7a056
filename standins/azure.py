"""Azure stand-ins: Microsoft Azure Attestation (SevSnpVm) and Key Vault secure key release, on TLS loopback.

**MAA** (`MaaStandIn`): `POST /attest/SevSnpVm` takes the SKR sidecar's report bundle
(https://learn.microsoft.com/rest/api/attestation/attestation/attest-sev-snp-vm;
microsoft/confidential-sidecar-containers pkg/attest/maa.go), verifies the SNP report with
`enclave_runtime.attest.verify("amd-sev-snp", ...)` (simulation root plus the pinned AMD roots), checks
that REPORT_DATA starts with SHA-256(runtime data), and issues an RS256 token with the confidential
containers' top-level claims (`x-ms-attestation-type: sevsnpvm`, `x-ms-compliance-status:
azure-compliant-uvm`, `x-ms-sevsnpvm-*`, `x-ms-runtime`;
https://learn.microsoft.com/azure/container-instances/confidential-containers-attestation-concepts,
https://learn.microsoft.com/azure/attestation/attestation-token-examples), `iss` = the configured
authority (the attestation provider's attestUri), not the loopback URL. `GET /certs`, OIDC discovery.

**Key Vault** (`KeyVaultStandIn`): answers the bodiless first request with the 401 Bearer challenge
azure-keyvault-keys expects, serves `GET /keys/{name}[/{version}]` and `POST /keys/{name}/{version}/release`
(https://learn.microsoft.com/rest/api/keyvault/keys/release/release). A release verifies the target token
against the JWKS of the MAA stand-in registered for its issuer (an unknown issuer is refused), its
expiry, then decides with THE evaluator `policies.review.key_release.azure.evaluate` over the release
policy exactly as the review recorded it. Released: `{"value": JWS}` with `key_hsm` wrapped to
`x-ms-runtime.keys[TpmEphemeralEncryptionKey]` (RSA-OAEP ‖ RFC 5649). Refused: 403 `Forbidden` naming
the failing claim; an unverifiable target: 400 `BadParameter`. Both codes are UNCONFIRMED (wire doc §2 ii:
Key Vault's refused-release codes are undocumented).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import secrets
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import jwt
from azure.core.credentials import AccessToken, AccessTokenInfo
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
from cryptography.x509.oid import ExtendedKeyUsageOID

from components.attestation.azure_release_policy import decode_release_policy
from enclave_runtime.attest import Collateral, TrustStore, VerificationError, verify
from enclave_runtime.keyrelease import WrappedKey, retry
from enclave_runtime.keyrelease import azure as client
from enclave_runtime.measurements import cce_policy_host_data
from enclave_runtime.simulate.ca import Issued, issue, rsa_key
from enclave_runtime.simulate.snp import SimulatedSnp, SimulatedSnpGuest
from enclave_runtime.simulate.tokens import POLICY_HASH, TokenIssuer
from policies.review.key_release import azure as release_policy
from policies.review.mocks import Recording, RecordedResource
from standins.cloud import CASES
from standins.server import Request, Response, Running, json_response, wait_for_interrupt
from standins.stack import PartyKey, load, party_keys

MAA_API_VERSIONS: Final = frozenset({"2022-08-01", "2025-06-01"})
# Key Vault API versions that have `release` (7.3 introduced it); the SDK pins one per client.
KV_API_VERSIONS: Final = frozenset({"7.3", "7.4", "7.5", "7.6", "2025-07-01"})
TENANT: Final = "00000000-0000-4000-8000-0000000000aa"
CHALLENGE: Final = f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", resource="https://vault.azure.net"'
# Another collaboration's attestation provider: a genuine MAA instance our policy does not name.
OTHER_AUTHORITY: Final = "https://othercollabwesteurope.weu.attest.azure.net"
CONTAINER_GROUP: Final = "azure-native:containerinstance:ContainerGroup"


# ---------------------------------------------------------------------------------------------- TLS


@dataclass
class TlsFiles:
    """A CA generated at start (in a temp dir) and what it issued: the loopback server certificate and
    the Key Vault release-signing certificate (named for the recorded vault hosts, as the SKR sidecar
    checks the JWS signer against the vault's DNS name)."""

    directory: Path
    ca: Issued
    server: Issued
    signer: Issued

    @property
    def ca_path(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def server_paths(self) -> tuple[Path, Path]:
        return self.directory / "server.pem", self.directory / "server.key"

    @classmethod
    def create(cls, vault_hosts: Sequence[str]) -> "TlsFiles":
        directory = Path(tempfile.mkdtemp(prefix="ccp-azure-standin-"))
        now = dt.datetime.now(dt.timezone.utc)
        start, end = now - dt.timedelta(hours=1), now + dt.timedelta(days=2)
        ca_key = rsa_key()
        ca = issue(
            "ccp Azure stand-in CA",
            ca_key,
            None,
            ca=True,
            not_before=start,
            not_after=end,
            hash_alg=hashes.SHA256(),
            extensions=[
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
            ],
        )

        def leaf(subject: str, names: list[x509.GeneralName]) -> Issued:
            key = rsa_key()
            return issue(
                subject,
                key,
                ca,
                ca=False,
                not_before=start,
                not_after=end,
                hash_alg=hashes.SHA256(),
                extensions=[
                    x509.SubjectAlternativeName(names),
                    x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                    x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                ],
            )

        import ipaddress

        server = leaf("localhost", [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        signer = leaf("Key Vault release signer (stand-in)", [x509.DNSName(h) for h in sorted(set(vault_hosts))] or [x509.DNSName("localhost")])
        files = cls(directory, ca, server, signer)
        files.ca_path.write_bytes(ca.pem())
        cert_path, key_path = files.server_paths
        cert_path.write_bytes(server.pem())
        key_path.write_bytes(
            server.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        key_path.chmod(0o600)
        return files

    def remove(self) -> None:
        for path in self.directory.iterdir():
            path.unlink()
        self.directory.rmdir()


class StaticCredential:
    """A `TokenCredential` holding one bearer token: a party's or the workload identity's, as Entra ID
    would issue it. Both protocols azure-core may call (`get_token`, `get_token_info`)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        return AccessTokenInfo(self._token, int(time.time()) + 3600)

    def __repr__(self) -> str:
        return "StaticCredential(<redacted>)"


def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return json_response(status, {"error": {"code": code, "message": message}}, headers)


def _query(path: str) -> tuple[list[str], dict[str, list[str]]]:
    parts = urlsplit(path)
    return parts.path.split("/")[1:], parse_qs(parts.query)


# ---------------------------------------------------------------------------------------------- MAA


class MaaStandIn:
    """One MAA instance (one attestation provider) issuing SevSnpVm tokens under `authority`."""

    def __init__(self, authority: str, simulation_roots: Sequence[x509.Certificate]) -> None:
        self.authority = authority.rstrip("/")
        self.issuer = TokenIssuer(self.authority, kid=f"ccp-standin-{hashlib.sha256(self.authority.encode()).hexdigest()[:12]}")
        self.store = TrustStore(simulation_roots=simulation_roots)
        self.attested = 0

    def handle(self, request: Request) -> Response:
        segments, query = _query(request.path)
        if request.method == "GET" and segments == ["certs"]:
            return json_response(200, self.issuer.jwks(x5c=True))
        if request.method == "GET" and segments == [".well-known", "openid-configuration"]:
            return json_response(200, self.issuer.discovery())
        if request.method == "POST" and segments == ["attest", "SevSnpVm"]:
            version = (query.get("api-version") or [""])[0]
            if version not in MAA_API_VERSIONS:
                return self._fail(400, "InvalidParameter", f"api-version {version!r} is not one of {sorted(MAA_API_VERSIONS)}")
            return self._attest(request)
        return self._fail(404, "NotFound", f"{request.method} {urlsplit(request.path).path} is not an MAA route")

    @staticmethod
    def _fail(status: int, code: str, message: str) -> Response:
        return _error(status, code, message, {"x-ms-error-code": code})

    def _attest(self, request: Request) -> Response:
        try:
            body = json.loads(request.body)
            bundle = json.loads(client.b64url_decode(body["report"], "report"))
            report = client.b64url_decode(bundle["SnpReport"], "report.SnpReport")
            chain = client.b64url_decode(bundle["VcekCertChain"], "report.VcekCertChain")
            runtime = body["runtimeData"]
            if runtime.get("dataType") != "JSON":
                raise ValueError(f"runtimeData.dataType is {runtime.get('dataType')!r}; the SKR flow sends JSON")
            runtime_bytes = client.b64url_decode(runtime["data"], "runtimeData.data")
            runtime_claims = json.loads(runtime_bytes)
            certificates = x509.load_pem_x509_certificates(chain)
        except (ValueError, KeyError, TypeError) as error:
            detail = f"field {error} is missing" if isinstance(error, KeyError) else str(error)
            return self._fail(400, "InvalidParameter", f"malformed SevSnpVm request: {detail}")
        try:
            claims = verify("amd-sev-snp", report, collateral=Collateral(certificates=certificates), store=self.store)
        except VerificationError as error:
            return self._fail(400, "InvalidParameter", f"SNP report rejected: {error}")
        expected = hashlib.sha256(runtime_bytes).digest()
        if claims.report_data[:32] != expected or any(claims.report_data[32:]):
            return self._fail(
                400,
                "InvalidParameter",
                f"report data {claims.report_data.hex()} is not SHA-256(runtimeData) {expected.hex()} + zeros: "
                "the runtime data was not attested by this report",
            )
        now = int(time.time())
        payload: dict[str, Any] = {
            "iat": now,
            "nbf": now,
            "exp": now + 8 * 3600,
            "jti": secrets.token_hex(32),
            "x-ms-policy-hash": POLICY_HASH,
            **release_policy.sev_snp_vm_claims(claims, report, runtime_claims, self.authority),
        }
        if isinstance(body.get("nonce"), (str, int)):
            payload["nonce"] = str(body["nonce"])  # "emitted in the generated token" (REST ref); claim name UNCONFIRMED
        self.attested += 1
        return json_response(200, {"token": self.issuer.sign(payload, headers={"jku": f"{self.authority}/certs"})})


# ---------------------------------------------------------------------------------------------- Key Vault


@dataclass
class VaultKey:
    """One party key as the stand-in holds it: the recorded names and policy, and its RSA-3072 private key."""

    party: str
    vault_url: str  # the recorded vault (https://<vault>.vault.azure.net)
    name: str
    version: str
    release_policy: dict[str, Any]
    policy_data: str
    private: rsa.RSAPrivateKey
    key_ops: list[str] = field(default_factory=list)

    @property
    def kid(self) -> str:
        return f"{self.vault_url}/keys/{self.name}/{self.version}"

    def jwk(self) -> dict[str, Any]:
        numbers = self.private.public_key().public_numbers()
        return {
            "kid": self.kid,
            "kty": "RSA-HSM",
            "key_ops": self.key_ops,
            "n": client._int_b64url(numbers.n),
            "e": client._int_b64url(numbers.e),
        }

    @classmethod
    def from_resource(cls, party: str, resource: RecordedResource) -> "VaultKey":
        outputs, properties = resource.outputs, resource.properties.get("properties") or {}
        key_uri = outputs.get("keyUri")
        if not isinstance(key_uri, str):
            raise ValueError(f"{resource.urn}: no recorded keyUri output; rerun the review")
        vault_url, name, _ = client.parse_key_id(key_uri)
        versioned = outputs.get("keyUriWithVersion")
        version = client.parse_key_id(versioned)[2] if isinstance(versioned, str) else None
        data = (properties.get("releasePolicy") or {}).get("data")
        if not isinstance(data, str):
            raise ValueError(f"{resource.urn}: properties.releasePolicy.data is not recorded; an exportable key needs one")
        size = int(properties.get("keySize") or 3072)
        return cls(
            party,
            vault_url,
            name,
            version or secrets.token_hex(16),
            decode_release_policy(data),
            data,
            rsa.generate_private_key(public_exponent=65537, key_size=size),
            list(properties.get("keyOps") or ["wrapKey", "unwrapKey", "encrypt", "decrypt"]),
        )


def explain(policy: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    """Why `evaluate` said no, claim by claim (diagnosis only: the decision is the evaluator's)."""
    issuer = claims.get("iss")
    entries = [e for e in policy.get("anyOf", []) if release_policy._same_authority(e.get("authority", ""), issuer)]
    if not entries:
        return (
            f"token issuer {issuer!r} is not an authority of the key's release policy "
            f"{release_policy.authorities(policy)}: only those attestation providers' tokens release it"
        )
    failures: list[str] = []
    for entry in entries:
        group = release_policy._group_key(entry)
        for condition in group[1] if group else []:
            if release_policy.condition_holds(condition, claims):
                continue
            if "claim" in condition:
                operator = next(k for k in condition if k != "claim")
                actual = release_policy.claim_value(claims, condition["claim"])
                shown = "absent" if actual is release_policy._MISSING else json.dumps(actual)
                failures.append(f"claim {condition['claim']} is {shown}, the policy requires {operator} {json.dumps(condition[operator])}")
            else:
                failures.append(f"condition {json.dumps(condition)} does not hold")
    return "the release policy is not satisfied: " + "; ".join(failures)


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class KeyVaultStandIn:
    """Key Vault for the recorded party keys. `issuers` maps an MAA authority to the stand-in whose
    signing keys verify its tokens (what real Key Vault gets from the authority's OIDC discovery)."""

    def __init__(
        self,
        keys: Sequence[VaultKey],
        issuers: Mapping[str, TokenIssuer],
        signer: Issued,
        chain: Sequence[x509.Certificate],
        principals: Mapping[str, str],
    ) -> None:
        self.keys: dict[str, VaultKey] = {}
        for key in keys:
            if key.name in self.keys:
                raise ValueError(f"two recorded vault keys are both named {key.name!r}; one loopback vault serves keys by name")
            self.keys[key.name] = key
        self.issuers = {a.rstrip("/").lower(): i for a, i in issuers.items()}
        self.signer = signer
        self.chain = list(chain)
        self.principals = dict(principals)  # bearer token -> principal ("party:<name>" | "workload")
        self.released = 0
        self.refused: list[str] = []
        self._lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            return _error(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", {"WWW-Authenticate": CHALLENGE})
        principal = self.principals.get(authorization.removeprefix("Bearer "))
        if principal is None:
            return _error(401, "Unauthorized", "AKV10032: Invalid issuer or token.", {"WWW-Authenticate": CHALLENGE})
        segments, query = _query(request.path)
        version = (query.get("api-version") or [""])[0]
        if version not in KV_API_VERSIONS:
            return _error(400, "BadParameter", f"api-version {version!r} is not one of {sorted(KV_API_VERSIONS)}")
        if len(segments) < 2 or segments[0] != "keys":
            return _error(404, "NotFound", f"{urlsplit(request.path).path} is not a key route")
        key = self.keys.get(segments[1])
        if key is None:
            return _error(404, "KeyNotFound", f"A key with (name/id) {segments[1]} was not found in this key vault.")
        rest = segments[2:]
        if request.method == "POST" and rest and rest[-1] == "release" and len(rest) <= 2:
            return self._release(request, key, rest[0] if len(rest) == 2 else "", principal, version)
        if request.method == "GET" and len(rest) <= 1:
            if principal not in {f"party:{key.party}", "workload"}:
                return _error(403, "Forbidden", f"caller {principal} has no keys/get permission on {key.name}")
            if rest and rest[0] and rest[0] != key.version:
                return _error(404, "KeyNotFound", f"key {key.name} has no version {rest[0]}")
            return json_response(200, self._bundle(key))
        return _error(405, "BadParameter", f"{request.method} {urlsplit(request.path).path} is not supported by the stand-in")

    def _bundle(self, key: VaultKey) -> dict[str, Any]:
        now = int(time.time())
        return {
            "key": key.jwk(),
            "attributes": {"enabled": True, "exportable": True, "created": now, "updated": now, "recoveryLevel": "Recoverable"},
            "release_policy": {"contentType": "application/json; charset=utf-8", "data": key.policy_data, "immutable": False},
        }

    def _release(self, request: Request, key: VaultKey, version: str, principal: str, api_version: str) -> Response:
        if principal != "workload":
            # Role "Key Vault Crypto Service Release User" (learn: skr-flow-confidential-vm-sev-snp).
            return self._refuse(403, "Forbidden", f"caller {principal} lacks keys/release on {key.name}")
        if version and version != key.version:
            return _error(404, "KeyNotFound", f"key {key.name} has no version {version}")
        try:
            body = json.loads(request.body or b"{}")
            target = body["target"]
            enc = body.get("enc") or client.RELEASE_ENC
            if enc not in client.ENC_HASHES:
                raise _Refused(400, "BadParameter", f"enc {enc!r} is not one of {sorted(client.ENC_HASHES)}")
            claims = self._verify_target(target)
            if not release_policy.evaluate(key.release_policy, claims):
                raise _Refused(403, "Forbidden", f"Target environment attestation statement cannot be verified: {explain(key.release_policy, claims)}")
            wrapping = self._runtime_key(claims)
        except _Refused as refusal:
            return self._refuse(refusal.status, refusal.code, refusal.message)
        except (ValueError, KeyError, TypeError) as error:
            return self._refuse(400, "BadParameter", f"malformed release request: {error}")
        with self._lock:
            self.released += 1
        return json_response(200, {"value": self._jws(key, wrapping, enc, api_version)})

    def _refuse(self, status: int, code: str, message: str) -> Response:
        with self._lock:
            self.refused.append(message)
        return _error(status, code, message)

    def _verify_target(self, target: Any) -> dict[str, Any]:
        if not isinstance(target, str) or target.count(".") != 2:
            raise _Refused(400, "BadParameter", "target is not a compact JWT: give the MAA token from attest/SevSnpVm")
        try:
            header = jwt.get_unverified_header(target)
            unverified = jwt.decode(target, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            raise _Refused(400, "BadParameter", f"target is not a JWT: {error}") from None
        if header.get("alg") != "RS256":
            raise _Refused(400, "BadParameter", f"target alg is {header.get('alg')!r}: only RS256 MAA tokens are accepted (an unsigned token carries no attestation)")
        issuer_url = unverified.get("iss")
        issuer = self.issuers.get(str(issuer_url).rstrip("/").lower()) if isinstance(issuer_url, str) else None
        if issuer is None:
            raise _Refused(400, "BadParameter", f"target issuer {issuer_url!r} is not an attestation provider whose keys this vault can fetch")
        if header.get("kid") != issuer.kid:
            raise _Refused(400, "BadParameter", f"target kid {header.get('kid')!r} is not in {issuer_url}/certs")
        try:
            return jwt.decode(
                target,
                issuer.key.public_key(),
                algorithms=["RS256"],
                issuer=issuer.issuer,
                options={"require": ["exp", "iat", "iss"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise _Refused(400, "BadParameter", f"target token expired at {unverified.get('exp')} (now {int(time.time())}): attest again") from None
        except jwt.PyJWTError as error:
            raise _Refused(400, "BadParameter", f"target token does not verify under {issuer_url}/certs: {error}") from None

    @staticmethod
    def _runtime_key(claims: Mapping[str, Any]) -> rsa.RSAPublicKey:
        runtime = claims.get("x-ms-runtime")
        keys = runtime.get("keys") if isinstance(runtime, Mapping) else None
        jwk = next(
            (k for k in keys or [] if isinstance(k, Mapping) and k.get("kid") == client.RUNTIME_KEY_ID and k.get("kty") == "RSA"),
            None,
        )
        if jwk is None:
            raise _Refused(400, "BadParameter", f"target has no x-ms-runtime.keys[kid={client.RUNTIME_KEY_ID}, kty=RSA] to wrap the key to")
        n = int.from_bytes(client.b64url_decode(jwk.get("n", ""), "runtime key n"), "big")
        e = int.from_bytes(client.b64url_decode(jwk.get("e", ""), "runtime key e"), "big")
        public = rsa.RSAPublicNumbers(e, n).public_key()
        if public.key_size < 2048:
            raise _Refused(400, "BadParameter", f"runtime key is RSA-{public.key_size}; at least 2048 bits")
        return public

    def _jws(self, key: VaultKey, wrapping: rsa.RSAPublicKey, enc: str, api_version: str) -> str:
        der = key.private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        kek = secrets.token_bytes(32)
        hash_type = client.ENC_HASHES[enc]
        encrypted_kek = wrapping.encrypt(kek, padding.OAEP(mgf=padding.MGF1(hash_type()), algorithm=hash_type(), label=None))
        ciphertext = encrypted_kek + aes_key_wrap_with_padding(kek, der)
        key_hsm = {
            "schema_version": "1.0",
            "header": {"kid": client.RUNTIME_KEY_ID, "alg": "dir", "enc": enc},
            "ciphertext": client.b64url(ciphertext),
        }
        released = key.jwk() | {"key_hsm": client.b64url(json.dumps(key_hsm).encode())}
        payload = {
            "request": {"api-version": api_version, "enc": enc, "kid": key.kid},
            "response": {"key": self._bundle(key) | {"key": released}},
        }
        leaf = self.signer.der()
        header = {
            "alg": "RS256",
            "kid": hashlib.sha1(leaf).hexdigest().upper(),
            "x5t#S256": client.b64url(hashlib.sha256(leaf).digest()),
            "x5c": [base64.b64encode(leaf).decode()] + [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in self.chain],
        }
        signing_input = f"{client.b64url(json.dumps(header).encode())}.{client.b64url(json.dumps(payload).encode())}"
        assert isinstance(self.signer.key, rsa.RSAPrivateKey)
        signature = self.signer.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{client.b64url(signature)}"


# ---------------------------------------------------------------------------------------------- the demo-only probe


class UnattestedProbe:
    """DEMO-ONLY: asks Key Vault to release with a target that carries no attestation: an unsigned
    (`alg: none`) token whose claims would satisfy the policy. Not an `AzureReleaser` mode and not
    reachable from it: it exists to show the vault refuses. If the vault released anyway, the key is
    opened and the data key returned, so the demo reports `granted` instead of hiding the failure."""

    cloud: Final = "azure"

    def __init__(self, standins: "AzureStandIns", key: PartyKey, claims: Mapping[str, Any]) -> None:
        self._standins = standins
        self._claims = dict(claims)
        self._key = key

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        from azure.keyvault.keys import KeyClient

        vault, name, version = client.parse_key_id(wrapped.key_id)
        ephemeral = rsa.generate_private_key(public_exponent=65537, key_size=client.EPHEMERAL_BITS)
        claims = self._claims | {"x-ms-runtime": json.loads(client.runtime_data(ephemeral.public_key()))}
        target = jwt.encode(claims, None, algorithm="none")
        kv = KeyClient(
            self._standins.vault.url,
            StaticCredential(self._standins.workload_token),
            verify_challenge_resource=False,
            connection_verify=str(self._standins.tls.ca_path),
            api_version=client.API_VERSION,
            retry_total=0,
        )
        try:
            result = kv.release_key(name, target, version=version, algorithm=client.RELEASE_ENC)
        except Exception as error:  # noqa: BLE001 - mapped to the service's own code/message
            raise client.key_vault_error(error) from None
        private = client.open_release(result.value, ephemeral, vault=vault, name=name, version=version, roots=[self._standins.tls.ca.certificate])
        return private.decrypt(wrapped.blob, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))


# ---------------------------------------------------------------------------------------------- all of it


def approved_host_data(recording: Recording, settings: Any = None) -> bytes:
    """The HOST_DATA an approved group reports: SHA-256 of the recorded container group's CCE policy
    (what the host hands the PSP at launch), else the settings' `sevSnp.hostData`."""
    for resource in recording.of_type(CONTAINER_GROUP):
        policy = (resource.properties.get("confidentialComputeProperties") or {}).get("ccePolicy")
        digest = cce_policy_host_data(policy) if isinstance(policy, str) else None
        if digest:
            return bytes.fromhex(digest)
    snp = getattr(getattr(getattr(settings, "collaboration", None), "measurements", None), "sev_snp", None)
    if snp is not None and getattr(snp, "host_data", None):
        return bytes.fromhex(snp.host_data)
    raise ValueError(
        "no approved host data: the recording has no confidential container group with "
        "confidentialComputeProperties.ccePolicy and no measurements.sevSnp.hostData was given"
    )


class AzureStandIns:
    """MAA (our collaboration's provider and another one) and Key Vault for one recording, plus the
    party wrappers and the simulated confidential container groups of `CASES`.

    `other-collaboration` is a genuine MAA token, from another collaboration's attestation provider
    (`OTHER_AUTHORITY`, which the vault can verify), for a group running OUR approved CCE policy: only
    the policy's authority binding can refuse it. (Our provider with other host data is what
    `unapproved-image` already covers.)
    """

    cloud: Final = "azure"

    def __init__(self, recording: Recording, settings: Any = None, *, backoff: retry.Backoff = retry.Backoff(), timeout: float = 10.0) -> None:
        self.recording = recording
        self.backoff = backoff
        self.timeout = timeout
        self.party_keys = [k for k in party_keys(recording) if k.cloud == "azure"]
        if not self.party_keys:
            raise ValueError("the recording has no Azure party data key (azure-native:keyvault:Key tagged party-data)")
        self.host_data = approved_host_data(recording, settings)
        keys = [VaultKey.from_resource(k.party, k.resource) for k in self.party_keys]
        authorities = sorted({a.rstrip("/") for k in keys for a in release_policy.authorities(k.release_policy)})
        if not authorities:
            raise ValueError("no release policy names an attestation authority")
        self.authority = authorities[0]
        self.chip = SimulatedSnp("milan")
        self.tls = TlsFiles.create([urlsplit(k.vault_url).hostname or "" for k in keys])
        self.maa_services = {a: MaaStandIn(a, [self.chip.root]) for a in [*authorities, OTHER_AUTHORITY]}
        self.workload_token = secrets.token_urlsafe(24)
        self.party_tokens = {k.party: secrets.token_urlsafe(24) for k in keys}
        principals = {self.workload_token: "workload"} | {t: f"party:{p}" for p, t in self.party_tokens.items()}
        self.vault_service = KeyVaultStandIn(
            keys,
            {a: s.issuer for a, s in self.maa_services.items()},
            self.tls.signer,
            [self.tls.ca.certificate],
            principals,
        )
        self._running: list[Running] = []
        try:
            self.maa = {a: self._start(s.handle) for a, s in self.maa_services.items()}
            self.vault = self._start(self.vault_service.handle)
        except Exception:
            self.stop()
            raise

    def _start(self, handler: Any) -> Running:
        running = Running(handler, tls=self.tls.server_paths)
        self._running.append(running)
        return running

    @classmethod
    def for_stack(cls, stack: str, report: str | None = None, **kwargs: Any) -> "AzureStandIns":
        return cls(load(report or stack), **kwargs)

    # --- clients ---------------------------------------------------------------------------------

    def key_url(self, key: PartyKey) -> str:
        return str(key.resource.outputs["keyUri"])

    def wrapper(self, key: PartyKey) -> client.AzureWrapper:
        return client.AzureWrapper(
            self.key_url(key),
            StaticCredential(self.party_tokens[key.party]),
            endpoint=self.vault.url,
            connection_verify=self.tls.ca_path,
            backoff=self.backoff,
            timeout=self.timeout,
        )

    def guest(self, case: str) -> SimulatedSnpGuest:
        if case == "debug":
            return SimulatedSnpGuest(self.chip, self.host_data, debug=True)
        if case == "unapproved-image":
            return SimulatedSnpGuest(self.chip, hashlib.sha256(b"package policy\n# another workload's CCE policy\n").digest())
        return SimulatedSnpGuest(self.chip, self.host_data)

    def releaser(self, key: PartyKey, case: str) -> Any:
        if case not in CASES:
            raise ValueError(f"case {case!r} is not one of {list(CASES)}")
        if case == "unattested":
            claims = {
                "iss": self.authority,
                "iat": int(time.time()),
                "exp": int(time.time()) + 3600,
                "x-ms-attestation-type": "sevsnpvm",
                "x-ms-compliance-status": "azure-compliant-uvm",
                "x-ms-sevsnpvm-hostdata": self.host_data.hex(),
                "x-ms-sevsnpvm-is-debuggable": False,
                "x-ms-sevsnpvm-vmpl": 0,
            }
            return UnattestedProbe(self, key, claims)
        authority = OTHER_AUTHORITY if case == "other-collaboration" else self.authority
        return client.AzureReleaser(
            evidence=self.guest(case),
            attestation_url=self.maa[authority].url,
            credential=StaticCredential(self.workload_token),
            endpoint=self.vault.url,
            connection_verify=self.tls.ca_path,
            backoff=self.backoff,
            timeout=self.timeout,
        )

    def stop(self) -> None:
        for running in self._running:
            running.stop()
        self._running.clear()
        if self.tls.directory.exists():
            self.tls.remove()

    def __enter__(self) -> "AzureStandIns":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m standins.azure", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev", help="stack whose review report (out/review-STACK.json) to enforce")
    parser.add_argument("--report", help="a review report path instead of out/review-STACK.json")
    args = parser.parse_args(argv)
    import signal

    # SIGTERM ends like Ctrl-C, so the temp dir with the TLS key is removed.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with AzureStandIns.for_stack(args.stack, args.report) as standins:
        for authority, running in standins.maa.items():
            print(f"MAA stand-in ({authority}): {running.url}/attest/SevSnpVm")
        print(f"Key Vault stand-in:     {standins.vault.url}  (api_version={client.API_VERSION}, verify_challenge_resource=False)")
        print(f"CA bundle:              {standins.tls.ca_path}  (connection_verify)")
        for key in standins.party_keys:
            print(f"  key {standins.key_url(key)}  party {key.party}")
        wait_for_interrupt()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
