"""A generated N-party collaboration (default 30): the review's scaling case for `make bench`.

Parties are spread round-robin over AWS, Azure and GCP in EU regions, each with one dataset; the
workload runs on one host per cloud (Nitro Enclave, Azure confidential container group, Confidential Space),
which is the documented key-release matrix. Measurements are deterministic stand-ins.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
from pathlib import Path
from typing import Any, Final

import yaml
from cryptography.hazmat.primitives.asymmetric import ed25519

from components.attestation import contract
from enclave_runtime.measurements import ApprovedMeasurements

ROOT: Final = Path(__file__).resolve().parents[1]
CLOUDS: Final = ("aws", "azure", "gcp")
REGIONS: Final = {"aws": "eu-west-1", "azure": "westeurope", "gcp": "europe-west4"}
HOSTS: Final = (
    {"cloud": "aws", "region": "eu-west-1", "tee": "nitro", "instanceType": "m6i.xlarge"},
    {"cloud": "azure", "region": "westeurope", "tee": "confidential-containers"},
    {"cloud": "gcp", "region": "europe-west4", "tee": "confidential-space", "instanceType": "n2d-standard-4"},
)


# ILLUSTRATIVE stand-in for `az confcom acipolicygen` output (the generated collaboration's CCE policy).
_CCE_POLICY: Final = b'package policy\n# ILLUSTRATIVE bench stand-in\napi_version := "0.10.0"\n'


_POLICY_SIGNER_PEM: Final = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBdzCCAR6gAwIBAgIUaFZmSiq0gaSOoLnB62RVFfLZl2swCgYIKoZIzj0EAwIw\n"
    "PDE6MDgGA1UEAwwxY2NwIHRlc3QgYXR0ZXN0YXRpb24gcG9saWN5IHNpZ25lciAo\n"
    "aWxsdXN0cmF0aXZlKTAeFw0yNjAxMDEwMDAwMDBaFw0zNTEyMzAwMDAwMDBaMDwx\n"
    "OjA4BgNVBAMMMWNjcCB0ZXN0IGF0dGVzdGF0aW9uIHBvbGljeSBzaWduZXIgKGls\n"
    "bHVzdHJhdGl2ZSkwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATBdKHZRVg2juYt\n"
    "ZByGjll/xyQsLqifQBYzLjxb9fulY6Xlb14DWPTnUzjIld2705e2NPoBxW5hXDkq\n"
    "qGyl+3j5MAoGCCqGSM49BAMCA0cAMEQCIFOH6re3xrx443dIaAY2++2VOnuFv6X/\n"
    "HxuBPPYIGEQlAiAZOY+udPe98l+cjWlkO0w3EkNsUW3HJ0qXAl+ELvZupQ==\n"
    "-----END CERTIFICATE-----\n"
)


def _hex(label: str, chars: int) -> str:
    return hashlib.sha512(f"ccp-bench:{label}".encode()).hexdigest()[:chars]


def _signing_key(party: str) -> ed25519.Ed25519PrivateKey:
    """A deterministic example key per generated party (bench only: the contract must verify)."""
    return ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"ccp-bench-key:{party}".encode()).digest())


def collaboration_config(parties: int = 30, name: str = "bench-collab") -> dict[str, Any]:
    """The `config:` mapping of a Pulumi.<stack>.yaml for an N-party dev collaboration."""
    digest = f"sha256:{_hex('image', 64)}"
    members = [
        {
            "name": f"party-{i:02d}-{CLOUDS[i % 3]}",
            "cloud": CLOUDS[i % 3],
            "region": REGIONS[CLOUDS[i % 3]],
            "dataClassification": "confidential",
            "datasets": [{"name": f"records-{i:02d}", "classification": "confidential"}],
        }
        for i in range(parties)
    ]
    for member in members:
        member["measurementSigningKey"] = contract.public_key_pem(_signing_key(member["name"]))
        if member["cloud"] == "aws":  # illustrative: each AWS party's key administrator (MFA)
            member["breakGlassPrincipal"] = f"arn:aws:iam::111122223333:role/{member['name']}-key-break-glass"
    return {
        # Production settings: the strictest policy levels, HSM keys and confidential OS-disk keys.
        "ccp:environment": "prod",
        "ccp:logRetentionDays": 2557,
        "ccp-azure:cvmOrchestratorObjectId": "5f1c3a2e-8d4b-4e6f-9a7c-2b1d0e3f4a5b",
        # Prod attestation provider in isolated mode (illustrative policy-signing certificate).
        "ccp-azure:attestationPolicySigningCertificates": [_POLICY_SIGNER_PEM],
        "ccp:collaboration": {
            "name": name,
            "parties": members,
            "workload": {
                "name": "bench-trainer",
                "image": f"europe-docker.pkg.dev/bench/workloads/trainer@{digest}",
                "hosts": [dict(h) for h in HOSTS],
            },
            "measurements": {
                "version": "bench-1",
                "nitro": {"pcr0": _hex("pcr0", 96), "pcr8": _hex("pcr8", 96), "pin": ["pcr0", "pcr8"]},
                # Illustrative CCE policy: hostData is its SHA-256 (checked in config).
                "sevSnp": {"hostData": hashlib.sha256(_CCE_POLICY).hexdigest(),
                           "ccePolicy": base64.b64encode(_CCE_POLICY).decode()},
                "confidentialSpace": {"imageDigests": [digest]},
            },
            "outputs": [{"name": "model", "recipients": [m["name"] for m in members]}],
        },
    }


def write_project(directory: Path, stack: str = "bench30", parties: int = 30) -> Path:
    """A Pulumi project directory running ccp's own program with the generated stack config, and its
    measurement contract signed by every generated party (a prod stack's review requires it)."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Pulumi.yaml", directory / "Pulumi.yaml")
    shutil.copy(ROOT / "__main__.py", directory / "__main__.py")
    config = collaboration_config(parties)
    (directory / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    collaboration = config["ccp:collaboration"]
    measurements = ApprovedMeasurements.model_validate(collaboration["measurements"], context={"environment": "prod"})
    document = contract.new_document(collaboration["name"], measurements)
    for member in collaboration["parties"]:
        document = contract.add_signature(document, member["name"], _signing_key(member["name"]))
    contract.write(contract.contract_path(directory, stack), document)
    return directory
