"""Fixtures of the privacy-preserving ML tests (run in .venv-ml by `make test-ml`; no Pulumi, no IaC).

The aggregator's attestation is simulated Nitro evidence (`SimulatedNitro`), trusted only through
`TrustStore(simulation_roots=[...])` and accepted only by a dev policy that pins the simulated image's PCR0.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util

import pytest

# These tests need .venv-ml (flwr, numpy, ...): `make test-ml`. In the main .venv (`pytest tests`) they are
# not collected, rather than failing on imports that environment cannot have (protobuf 5 vs 6).
if importlib.util.find_spec("flwr") is None or importlib.util.find_spec("numpy") is None:
    collect_ignore_glob = ["test_*.py"]
else:
    from enclave_runtime.ml import data
    from enclave_runtime.ml.job import simulated_identity

from enclave_runtime.attest import TrustStore
from enclave_runtime.ml.attestation import AggregatorIdentity, AttestationGate
from enclave_runtime.policy import Policy
from enclave_runtime.simulate.nitro import SimulatedNitro, image_pcrs

PARTIES = ("hospital-aws", "hospital-azure", "hospital-gcp")
# The simulated enclave's default PCR0 (simulate/nitro.py): the approved aggregator image in these tests.
APPROVED_PCR0 = image_pcrs()[0].hex()
CHANNEL_KEY = hashlib.sha256(b"aggregator channel key").digest()


@pytest.fixture(scope="session")
def sim() -> SimulatedNitro:
    return SimulatedNitro()


@pytest.fixture(scope="session")
def policy() -> Policy:
    return Policy.load({"environment": "dev", "measurements": {"version": "1", "nitro": {"pcr0": APPROVED_PCR0}}})


@pytest.fixture(scope="session")
def store(sim: SimulatedNitro) -> TrustStore:
    return TrustStore(simulation_roots=[sim.root])


@pytest.fixture(scope="session")
def approved(sim: SimulatedNitro) -> AggregatorIdentity:
    """The approved aggregator image, its evidence bound to the channel key it presents."""
    return aggregator(sim, CHANNEL_KEY)


def aggregator(sim: SimulatedNitro, channel_key: bytes, pcrs: dict[int, bytes] | None = None,
               debug: bool = False) -> AggregatorIdentity:
    """The job's own simulated aggregator identity (`job.simulated_identity`)."""
    return simulated_identity(sim, channel_key, pcrs, debug)


@pytest.fixture
def gates(store: TrustStore, policy: Policy) -> dict[str, AttestationGate]:
    now = dt.datetime.now(dt.timezone.utc)
    return {party: AttestationGate(store, policy, at=lambda: now) for party in PARTIES}


@pytest.fixture(scope="session")
def dataset() -> "data.Dataset":
    return data.load(PARTIES)


@pytest.fixture(scope="session")
def standardize(dataset: "data.Dataset") -> "data.Standardizer":
    return data.Standardizer.pooled(dataset.parties)
