"""Recovery of a lost workload host (README "Operations"): a new host running the same approved
measurements gets the party keys released again and opens the data sealed before the loss, with no
re-sealing.

Against the local stand-ins of the dev stack: each party seals a dataset once under its key (as on its
own machine); a first simulated workload opens it and is then discarded (its ephemeral keys and
evidence with it); a fresh simulated workload (new ephemeral key pair, new attestation evidence, the
same measurements) opens the same sealed file, byte for byte unchanged. Nothing of the first host is
needed: the sealed file and the key policy recorded by the review are the whole recovery state.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any, Iterator

import pytest

from enclave_runtime.keyrelease.aws import AwsReleaser
from enclave_runtime.seal import open_sealed, seal
from policies.review import project
from policies.review.mocks import Recording
from policies.review.run import REPO_ROOT, ccp_settings
from standins.cloud import CloudStandIns
from standins.demo import _start, sample_dataset
from standins.stack import PartyKey, party_keys

COLLABORATION = "dev-demo"


@pytest.fixture(scope="module")
def settings() -> Any:
    return ccp_settings(project.load(REPO_ROOT, "dev"))


@pytest.fixture(scope="module", params=["aws", "azure", "gcp"])
def cloud(request: pytest.FixtureRequest, dev_recording: Recording, settings: Any) -> Iterator[tuple[CloudStandIns, PartyKey]]:
    services = _start(request.param, dev_recording, settings)
    try:
        (key,) = [k for k in party_keys(dev_recording) if k.cloud == request.param]
        yield services, key
    finally:
        services.stop()


def _seal(services: CloudStandIns, key: PartyKey, path: Path) -> bytes:
    plaintext = sample_dataset(key.party, "recovery", rows=200)
    with path.open("wb") as sink:
        seal(io.BytesIO(plaintext), sink, collaboration=COLLABORATION, party=key.party, dataset="recovery",
             wrapper=services.wrapper(key))
    return plaintext


def _open(path: Path, key: PartyKey, unwrap: Any) -> bytes:
    expect = {"collaboration": COLLABORATION, "party": key.party, "dataset": "recovery"}
    with path.open("rb") as source, open_sealed(source, data_key_for=unwrap, expect=expect) as chunks:
        return b"".join(chunks)


def test_a_new_host_with_the_same_measurements_opens_the_existing_sealed_data(
    cloud: tuple[CloudStandIns, PartyKey], tmp_path: Path
) -> None:
    services, key = cloud
    sealed = tmp_path / f"{key.party}.recovery.sealed"
    plaintext = _seal(services, key, sealed)
    digest = hashlib.sha256(sealed.read_bytes()).hexdigest()

    lost = services.releaser(key, "approved")
    assert _open(sealed, key, lost.unwrap) == plaintext
    del lost  # the host is gone: its ephemeral keys and evidence with it

    replacement = services.releaser(key, "approved")
    assert _open(sealed, key, replacement.unwrap) == plaintext
    # Not re-sealed: the replacement read the very bytes the party wrote before the loss.
    assert hashlib.sha256(sealed.read_bytes()).hexdigest() == digest


def test_a_replacement_with_other_measurements_is_still_refused(cloud: tuple[CloudStandIns, PartyKey], tmp_path: Path) -> None:
    """Recovery is not a bypass: a host rebuilt from another image gets nothing."""
    services, key = cloud
    sealed = tmp_path / f"{key.party}.recovery.sealed"
    _seal(services, key, sealed)
    with pytest.raises(Exception):
        _open(sealed, key, services.releaser(key, "unapproved-image").unwrap)


class _Spy:
    """The replacement enclave's evidence source, recording what it was asked to attest."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.public_keys, self.documents = inner, [], []

    def attest(self, public_key: bytes) -> bytes:
        document = self.inner.attest(public_key)
        self.public_keys.append(public_key)
        self.documents.append(document)
        return document


def test_aws_replacement_uses_fresh_ephemeral_keys_and_evidence(
    dev_recording: Recording, settings: Any, tmp_path: Path
) -> None:
    services = _start("aws", dev_recording, settings)
    try:
        (key,) = [k for k in party_keys(dev_recording) if k.cloud == "aws"]
        sealed = tmp_path / "aws.recovery.sealed"
        plaintext = _seal(services, key, sealed)
        region = str(key.resource.outputs.get("arn", "")).split(":")[3] or "eu-west-1"
        hosts = []
        for _ in range(2):  # the lost host, then its replacement: two enclaves, the same PCRs
            spy = _Spy(services.enclave("approved"))
            releaser = AwsReleaser(services.client(services.enclave_role, region), spy, backoff=services.backoff)
            assert _open(sealed, key, releaser.unwrap) == plaintext
            hosts.append(spy)
        lost, replacement = hosts
        assert lost.public_keys and replacement.public_keys
        assert set(lost.public_keys).isdisjoint(replacement.public_keys)
        assert set(lost.documents).isdisjoint(replacement.documents)
    finally:
        services.stop()
