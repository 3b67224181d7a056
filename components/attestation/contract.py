"""The measurement contract: the approved measurements as a versioned document every party signs.

Every party's key is released only to the approved measurements (`ccp:collaboration.measurements`),
so the set a stack deploys must be the set every party agreed to. The contract of a stack is one
JSON file, `stacks/contracts/<stack>.json`:

    {
      "format": "ccp-measurement-contract/v1",
      "collaboration": "<ccp:collaboration.name>",
      "version": "<measurements.version>",
      "measurements": { ...ApprovedMeasurements.document()... },
      "digest": "sha256:<hex of SHA-256 over the RFC 8785 (JCS) bytes of measurements>",
      "signatures": [{"party": "<name>", "keyId": "<hex>", "algorithm": "ed25519", "signature": "<base64>"}]
    }

Each party declares its public key in the stack config (`ccp:collaboration.parties[].measurementSigningKey`:
a PEM public key, or the path of one in the repository) and signs, with `cryptography`, the JCS bytes
of the statement `{"type", "collaboration", "party", "version", "digest"}` — the digest pins every
measurement, pin and the version; the collaboration and party names keep a signature from being
replayed for another collaboration or another party. Algorithms: Ed25519 (RFC 8032, 64 raw bytes) or
ECDSA P-256 with SHA-256 (DER); any other key type is refused. `keyId` is the SHA-256 of the key's
DER SubjectPublicKeyInfo, so a rotated key is named, not silently tried.

`check` recomputes the digest from the stack's measurements (what the key policies are generated from),
never trusting the file's: a party's signature is valid only when it verifies, with the party's
declared key, over the stack's own digest. A signature over an earlier set is reported as stale.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Iterable, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from enclave_runtime.jcs import canonicalize
from enclave_runtime.measurements import ApprovedMeasurements

FORMAT: Final = "ccp-measurement-contract/v1"
CONTRACTS_DIR: Final = Path("stacks") / "contracts"

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


class ContractError(ValueError):
    """A key, contract file or signature that cannot be used; the message says which and why."""


# --- keys -------------------------------------------------------------------------------------------


def is_pem(value: str) -> bool:
    return value.lstrip().startswith("-----BEGIN")


def load_public_key(pem: str) -> PublicKey:
    """Ed25519 or ECDSA P-256 public key in PEM (SubjectPublicKeyInfo); anything else is refused."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as error:
        raise ContractError(f"is not a PEM public key ({error})") from None
    return _supported(key, "public key")


def load_private_key(pem: bytes) -> PrivateKey:
    """An unencrypted Ed25519 or ECDSA P-256 private key in PEM (PKCS#8 or traditional)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise ContractError(f"is not an unencrypted PEM private key ({error})") from None
    return _supported(key, "private key")


def _supported(key: Any, what: str) -> Any:
    if isinstance(key, (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey)):
        return key
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise ContractError(f"the {what} is neither Ed25519 nor ECDSA P-256; other key types are refused")


def key_id(key: PublicKey) -> str:
    """SHA-256 (hex) of the key's DER SubjectPublicKeyInfo."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def algorithm(key: PublicKey | PrivateKey) -> str:
    return "ed25519" if isinstance(key, (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey)) else "ecdsa-p256-sha256"


def public_key_pem(key: PrivateKey | PublicKey) -> str:
    """The PEM a party declares as its `measurementSigningKey`."""
    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def declared_key(reference: str, root: Path) -> PublicKey:
    """A party's `measurementSigningKey`: inline PEM, or the path of a PEM file under `root`."""
    if is_pem(reference):
        return load_public_key(reference)
    path = (root / reference).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ContractError(f"{reference!r} is outside the repository: give a path under it, or the PEM itself")
    try:
        text = path.read_text()
    except OSError as error:
        raise ContractError(f"{reference!r} cannot be read ({error.strerror or error})") from None
    try:
        return load_public_key(text)
    except ContractError as error:
        raise ContractError(f"{reference!r}: {error}") from None


# --- statement, signing, verification ----------------------------------------------------------------


def statement(collaboration: str, party: str, version: str, digest: str) -> bytes:
    """The JCS bytes a party signs."""
    return canonicalize(
        {"type": FORMAT, "collaboration": collaboration, "party": party, "version": version, "digest": digest}
    )


def sign(private_key: PrivateKey, message: bytes) -> str:
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        raw = private_key.sign(message)
    else:
        raw = private_key.sign(message, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(raw).decode()


def verifies(key: PublicKey, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature.encode(), validate=True)
    except (binascii.Error, ValueError, AttributeError):
        return False
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(raw, message)
        else:
            key.verify(raw, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


# --- the contract document -----------------------------------------------------------------------------


def contract_path(root: Path, stack: str) -> Path:
    return root / CONTRACTS_DIR / f"{stack}.json"


def new_document(collaboration: str, measurements: ApprovedMeasurements) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "collaboration": collaboration,
        "version": measurements.version,
        "measurements": measurements.document(),
        "digest": measurements.digest(),
        "signatures": [],
    }


def digest_of(document: Any) -> str:
    return "sha256:" + hashlib.sha256(canonicalize(document)).hexdigest()


def read(path: Path) -> dict[str, Any]:
    """The contract file as data; ContractError when it is unreadable or not a contract's shape."""
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise ContractError(f"{path}: cannot be read ({error.strerror or error})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ContractError(f"{path}: is not JSON ({error})") from None
    if not isinstance(data, dict):
        raise ContractError(f"{path}: is not a JSON object")
    problems = []
    if data.get("format") != FORMAT:
        problems.append(f"format is {data.get('format')!r}, not {FORMAT!r}")
    for name in ("collaboration", "version", "digest"):
        if not isinstance(data.get(name), str):
            problems.append(f"{name} must be a string")
    if not isinstance(data.get("measurements"), dict):
        problems.append("measurements must be an object")
    signatures = data.get("signatures")
    if not isinstance(signatures, list) or not all(
        isinstance(s, dict) and all(isinstance(s.get(k), str) for k in ("party", "keyId", "signature"))
        for s in signatures
    ):
        problems.append("signatures must be a list of {party, keyId, algorithm, signature} strings")
    if problems:
        raise ContractError(f"{path}: " + "; ".join(problems))
    return data


def write(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def add_signature(
    document: dict[str, Any], party: str, private_key: PrivateKey, declared: PublicKey | None = None
) -> dict[str, Any]:
    """`document` with `party`'s signature (replacing an earlier one by that party).

    `declared`: the party's public key from the stack config; signing with another key is refused
    (the signature would never verify)."""
    public = private_key.public_key()
    if declared is not None and key_id(declared) != key_id(public):
        raise ContractError(
            f"the private key (keyId {key_id(public)[:16]}…) is not party {party}'s declared measurementSigningKey "
            f"(keyId {key_id(declared)[:16]}…)"
        )
    message = statement(document["collaboration"], party, document["version"], document["digest"])
    entry = {"party": party, "keyId": key_id(public), "algorithm": algorithm(public), "signature": sign(private_key, message)}
    others = [s for s in document["signatures"] if s.get("party") != party]
    return {**document, "signatures": sorted([*others, entry], key=lambda s: s["party"])}


@dataclass
class PartyStatus:
    party: str
    signed: bool
    valid: bool
    reason: str = ""


@dataclass
class ContractStatus:
    """What the review reports: the digest the key policies are generated from and who covers it."""

    path: str
    collaboration: str
    version: str
    digest: str
    parties: list[PartyStatus]
    problems: list[str] = field(default_factory=list)  # file-level: unreadable, tampered, unknown signers

    @property
    def complete(self) -> bool:
        return not self.problems and all(p.valid for p in self.parties)

    def record(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "version": self.version,
            "digest": self.digest,
            "complete": self.complete,
            "parties": [asdict(p) for p in self.parties],
            "problems": list(self.problems),
        }


def check(
    collaboration: str,
    measurements: ApprovedMeasurements,
    parties: Sequence[tuple[str, str | None]],
    root: Path,
    stack: str,
) -> ContractStatus:
    """Who has validly signed exactly `measurements`: `parties` is (name, measurementSigningKey) each."""
    path = contract_path(root, stack)
    shown = str(CONTRACTS_DIR / f"{stack}.json")
    expected = measurements.digest()
    status = ContractStatus(shown, collaboration, measurements.version, expected, [])
    document: dict[str, Any] | None = None
    if not path.exists():
        status.problems.append(f"{shown}: no contract file: no party has signed the measurements")
    else:
        try:
            document = read(path)
        except ContractError as error:
            status.problems.append(str(error).replace(str(path), shown))
    signatures: list[dict[str, Any]] = document["signatures"] if document else []
    stale = ""
    if document is not None:
        status.problems += _document_problems(document, collaboration, shown)
        if document["digest"] != expected:
            stale = (
                f"signed version {document['version']} ({document['digest'][:23]}…), not the stack's measurements "
                f"version {measurements.version} ({expected[:23]}…): the measurements changed after signing"
            )
    names = {name for name, _ in parties}
    for entry in signatures:
        if entry["party"] not in names:
            status.problems.append(f"{shown}: a signature names {entry['party']!r}, which is not a party of the collaboration")
    for name, reference in parties:
        status.parties.append(_party_status(name, reference, signatures, collaboration, measurements, document, stale, root))
    return status


def _document_problems(document: dict[str, Any], collaboration: str, shown: str) -> list[str]:
    problems = []
    try:
        recorded = digest_of(document["measurements"])
    except ValueError as error:
        return [f"{shown}: measurements cannot be canonicalized ({error})"]
    if document["digest"] != recorded:
        problems.append(
            f"{shown}: digest {document['digest'][:23]}… is not the digest of the file's own measurements "
            f"({recorded[:23]}…): the file was edited by hand"
        )
    if document["measurements"].get("version") != document["version"]:
        problems.append(f"{shown}: version {document['version']!r} is not the measurements' version")
    if document["collaboration"] != collaboration:
        problems.append(f"{shown}: is the contract of collaboration {document['collaboration']!r}, not {collaboration!r}")
    return problems


def _party_status(
    name: str,
    reference: str | None,
    signatures: Iterable[dict[str, Any]],
    collaboration: str,
    measurements: ApprovedMeasurements,
    document: dict[str, Any] | None,
    stale: str,
    root: Path,
) -> PartyStatus:
    mine = [s for s in signatures if s["party"] == name]
    signed = bool(mine)
    if reference is None:
        return PartyStatus(name, signed, False, "declares no measurementSigningKey: its signature cannot be checked")
    try:
        key = declared_key(reference, root)
    except ContractError as error:
        return PartyStatus(name, signed, False, f"measurementSigningKey {error}")
    if not mine:
        return PartyStatus(name, False, False, "has not signed")
    if len(mine) > 1:
        return PartyStatus(name, True, False, "has more than one signature in the contract file")
    entry = mine[0]
    if entry["keyId"] != key_id(key):
        return PartyStatus(
            name, True, False,
            f"signed with key {entry['keyId'][:16]}…, not its declared measurementSigningKey ({key_id(key)[:16]}…)",
        )
    if verifies(key, statement(collaboration, name, measurements.version, measurements.digest()), entry["signature"]):
        return PartyStatus(name, True, True)
    if stale and document is not None and verifies(
        key, statement(collaboration, name, document["version"], document["digest"]), entry["signature"]
    ):
        return PartyStatus(name, True, False, f"stale signature: {stale}")
    return PartyStatus(name, True, False, "the signature does not verify with its declared key over the stack's measurements")
