"""`python -m enclave_runtime seal` for the Azure and GCP parties, end to end against their stand-ins: the
party's own bearer token (from an environment variable) wraps, the approved simulated workload opens."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from enclave_runtime.cli import main
from enclave_runtime.keyrelease import retry
from enclave_runtime.seal import open_file
from policies.review.mocks import Recording
from policies.review.run import REPO_ROOT
from standins.azure import AzureStandIns
from standins.gcp import GcpStandIns, approved_image_digests
from standins.stack import party_keys

STACK = str(REPO_ROOT / "Pulumi.dev.yaml")
NO_SLEEP = retry.Backoff(attempts=2, sleep=lambda _: None)


@pytest.fixture(scope="module")
def azure(dev_recording: Recording) -> Iterator[AzureStandIns]:
    with AzureStandIns(dev_recording, backoff=NO_SLEEP) as running:
        yield running


@pytest.fixture(scope="module")
def gcp(dev_recording: Recording) -> Iterator[GcpStandIns]:
    with GcpStandIns(dev_recording, approved_image_digests("dev"), backoff=NO_SLEEP) as running:
        yield running


def _seal(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["seal", "--stack", STACK, *args, "--access-token-env", "CCP_TEST_TOKEN", "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_azure_party_seals_with_its_token_and_the_approved_container_opens(
    azure: AzureStandIns, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (key,) = [k for k in azure.party_keys if k.party == "clinic-azure"]
    source, sealed = tmp_path / "labels.csv", tmp_path / "labels.sealed"
    source.write_bytes(os.urandom(70_000))
    monkeypatch.setenv("CCP_TEST_TOKEN", azure.party_tokens["clinic-azure"])
    code, out = _seal(
        capsys, "--party", "clinic-azure", "--dataset", "imaging-labels", "--input", str(source), "--output", str(sealed),
        "--key-id", azure.key_url(key), "--endpoint", azure.vault.url, "--ca-file", str(azure.tls.ca_path),
    )
    assert code == 0, out
    assert (out["party"], out["dataset"], out["bytes"]) == ("clinic-azure", "imaging-labels", 70_000)
    expect = {"collaboration": "dev-demo", "party": "clinic-azure", "dataset": "imaging-labels"}
    opened = open_file(sealed, tmp_path / "opened", releaser=azure.releaser(key, "approved"), expect=expect)
    assert (tmp_path / "opened").read_bytes() == source.read_bytes()
    assert opened.header.wrapped_key.algorithm == "RSA-OAEP-256"
    # The debug build cannot open what the party sealed.
    with pytest.raises(Exception, match="Forbidden"):
        open_file(sealed, tmp_path / "debug", releaser=azure.releaser(key, "debug"), expect=expect)
    assert not (tmp_path / "debug").exists()


def test_gcp_party_seals_with_its_token_and_the_approved_workload_opens(
    gcp: GcpStandIns, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (key,) = [k for k in party_keys(gcp.recording) if k.party == "lab-gcp"]
    source, sealed = tmp_path / "genotypes.csv", tmp_path / "genotypes.sealed"
    source.write_bytes(os.urandom(70_000))
    monkeypatch.setenv("CCP_TEST_TOKEN", gcp.user_token(gcp.owner(key)))
    code, out = _seal(
        capsys, "--party", "lab-gcp", "--dataset", "genotypes", "--input", str(source), "--output", str(sealed),
        "--key-id", str(key.resource.outputs["id"]), "--endpoint", gcp.kms.url,
    )
    assert code == 0, out
    assert (out["party"], out["keyId"]) == ("lab-gcp", str(key.resource.outputs["id"]))
    expect = {"collaboration": "dev-demo", "party": "lab-gcp", "dataset": "genotypes"}
    open_file(sealed, tmp_path / "opened", releaser=gcp.releaser(key, "approved"), expect=expect)
    assert (tmp_path / "opened").read_bytes() == source.read_bytes()


def test_anyone_but_the_gcp_owner_is_refused_wrapping(
    gcp: GcpStandIns, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (key,) = [k for k in party_keys(gcp.recording) if k.party == "lab-gcp"]
    source = tmp_path / "genotypes.csv"
    source.write_bytes(b"x")
    monkeypatch.setenv("CCP_TEST_TOKEN", gcp.user_token("serviceAccount:intruder@example.iam.gserviceaccount.com"))
    code, out = _seal(
        capsys, "--party", "lab-gcp", "--dataset", "genotypes", "--input", str(source), "--output", str(tmp_path / "s"),
        "--key-id", str(key.resource.outputs["id"]), "--endpoint", gcp.kms.url,
    )
    assert code == 1
    assert out["error"]["check"] == "key-release"
    assert "Permission 'cloudkms.cryptoKeyVersions.useToEncrypt' denied" in out["error"]["message"]
    assert "serviceAccount:intruder@example.iam.gserviceaccount.com matches none" in out["error"]["message"]
    assert not (tmp_path / "s").exists()
