"""`make demo`: the whole flow on the dev stack, and a demo that must fail when a recorded policy is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policies.review.mocks import Recording
from standins import demo
from standins.cloud import CASES
from standins.stack import load


def _record(out: Path) -> dict:
    return json.loads((out / "demo-dev.json").read_text())


def test_dev_demo_every_decision_matches(tmp_path: Path) -> None:
    assert demo.run("dev", quiet=True, out=tmp_path) == 0
    record = _record(tmp_path)
    assert list(record) == ["stack", "decisions", "result", "outputs", "audit"]
    assert all(list(d) == ["party", "cloud", "case", "expected", "decision", "reason"] for d in record["decisions"])
    seen = {(d["party"], d["cloud"], d["case"]) for d in record["decisions"]}
    parties = {("clinic-aws", "aws"), ("clinic-azure", "azure"), ("lab-gcp", "gcp")}
    assert seen == {(p, c, case) for p, c in parties for case in CASES}
    for row in record["decisions"]:
        assert row["decision"] == ("granted" if row["case"] == "approved" else "denied"), row
        if row["decision"] == "denied":
            assert row["reason"].startswith(("AWS KMS: ", "Azure Key Vault: ", "GCP STS: ", "Cloud KMS: ")), row
    # 2000 rows per party's one dataset; every party's data reached the joint result
    assert record["result"]["parties"] == ["clinic-aws", "clinic-azure", "lab-gcp"]
    assert record["result"]["rows"] == 6000
    assert record["outputs"] == [f"global-model.{p}.sealed" for p in ("clinic-aws", "clinic-azure", "lab-gcp")]
    # genesis + 3 approved releases + 3 unseals + 3 outputs + 12 refusals
    assert record["audit"] == {"entries": 22, "verified": True}


def test_demo_fails_when_a_recorded_binding_no_longer_admits_the_approved_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo judges what was recorded: drop the GCP key's workload-identity member and the approved
    workload is refused there, so the demo exits 1 and says so in its record."""

    def edited(path: Path) -> Recording:
        recording = load(path)
        recording.resources = [
            r for r in recording.resources
            if not (r.type == "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember" and "principalSet://" in str(r.properties.get("member")))
        ]
        return recording

    monkeypatch.setattr(demo, "load", edited)
    assert demo.run("dev", quiet=True, out=tmp_path) == 1
    rows = {(d["party"], d["case"]): d for d in _record(tmp_path)["decisions"]}
    assert rows[("lab-gcp", "approved")]["decision"] == "denied"
    assert rows[("lab-gcp", "approved")]["reason"].startswith("Cloud KMS: ")
    assert rows[("clinic-aws", "approved")]["decision"] == "granted"
