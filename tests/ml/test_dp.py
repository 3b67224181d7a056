"""The privacy budget: exact accounting, refusals that spend nothing and touch no data, a ledger that
survives a restart and detects tampering and rollback, and OpenDP statistics on the joint data."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from enclave_runtime.ml import data, dp
from enclave_runtime.ml.config import ConfigError, MLConfig, PrivacyBudget

BUDGET = PrivacyBudget(epsilon=1.0, delta=1e-6, outputs=("cohort-statistics",))
OUT = "cohort-statistics"


def charge(ledger: dp.PrivacyLedger, job: str, *eps: str) -> dp.Spend:
    return ledger.charge(job, OUT, [dp.Charge(f"{job}-{i}", Decimal(e)) for i, e in enumerate(eps)])


def never() -> dict[str, np.ndarray]:
    raise AssertionError("a refused job touched the data")


@pytest.fixture
def ledger(tmp_path: Path) -> dp.PrivacyLedger:
    return dp.PrivacyLedger.open(tmp_path / "privacy.jsonl", BUDGET, "hospitals-study")


def test_remaining_budget_is_exact_after_spends(ledger: dp.PrivacyLedger) -> None:
    charge(ledger, "a", "0.1", "0.2")
    charge(ledger, "b", "0.2")
    assert ledger.remaining == (Decimal("0.5"), Decimal("0.000001"))  # not 0.49999999999999994
    charge(ledger, "c", "0.5")
    assert ledger.remaining[0] == 0
    with pytest.raises(dp.BudgetExceeded, match=r"costs epsilon=0.0001 .* remaining budget is epsilon=0.0"):
        charge(ledger, "d", "0.0001")


def test_a_refused_job_spends_nothing_and_never_loads_data(ledger: dp.PrivacyLedger) -> None:
    charge(ledger, "first", "0.7")
    before = ledger.path.read_bytes()
    queries = [dp.Query("n", "radius", "count", 0.2), dp.Query("m", "radius", "mean", 0.2, (5.0, 30.0))]
    with pytest.raises(dp.BudgetExceeded, match=r"job 'too-much' costs epsilon=0.4.*remaining budget is epsilon=0.3"):
        dp.run_job(ledger, "too-much", OUT, queries, never)
    assert ledger.path.read_bytes() == before
    assert ledger.remaining[0] == Decimal("0.3")


def test_the_budget_cannot_be_exceeded_by_splitting_a_job(ledger: dp.PrivacyLedger, tmp_path: Path) -> None:
    """Ten small jobs of 0.15 each: six fit into 1.0, the rest are refused, also from a second process's view."""
    admitted = 0
    for i in range(10):
        try:
            charge(ledger, f"part-{i}", "0.15")
            admitted += 1
        except dp.BudgetExceeded:
            pass
    assert admitted == 6 and ledger.remaining[0] == Decimal("0.10")
    other = dp.PrivacyLedger.open(ledger.path, BUDGET, "hospitals-study")  # another runtime on the same file
    with pytest.raises(dp.BudgetExceeded):
        charge(other, "again", "0.15")
    charge(other, "fits", "0.1")
    with pytest.raises(dp.BudgetExceeded):  # the first handle sees the other's spend before admitting
        charge(ledger, "last", "0.05")


def test_an_undeclared_output_cannot_spend(ledger: dp.PrivacyLedger) -> None:
    with pytest.raises(dp.BudgetExceeded, match="output 'per-site-means'.*declare it in ccp:collaboration.privacy.outputs"):
        ledger.charge("j", "per-site-means", [dp.Charge("q", Decimal("0.1"))])
    assert ledger.remaining[0] == Decimal("1.0")


def test_the_ledger_survives_a_restart_and_is_verified_on_load(ledger: dp.PrivacyLedger) -> None:
    charge(ledger, "a", "0.25")
    spend = charge(ledger, "b", "0.125", "0.125")
    reopened = dp.PrivacyLedger.open(ledger.path, BUDGET, "hospitals-study", expected_head=spend.head)
    assert reopened.remaining == (Decimal("0.50"), Decimal("0.000001"))
    assert [s.job for s in reopened.spends] == ["a", "b"] and reopened.head == ledger.head == spend.head


def tampered(path: Path, change) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(change(lines)))


def edit_spend(lines: list[bytes]) -> list[bytes]:
    entry = json.loads(lines[1])
    entry["data"]["epsilon"] = "0.01"
    entry["data"]["queries"][0]["epsilon"] = "0.01"
    return [lines[0], json.dumps(entry, sort_keys=True, separators=(",", ":")).encode() + b"\n", *lines[2:]]


@pytest.mark.parametrize("change, message", [
    (edit_spend, "line 3: prev does not match"),  # the edited line itself verifies; the next line's prev does not
    (lambda lines: [lines[0], *lines[2:]], "line 2: seq is 2, expected 1"),
    (lambda lines: [lines[0], lines[2], lines[1]], "line 2: seq is 2, expected 1"),
    (lambda lines: [lines[0], lines[1].replace(b'"job":"a"', b'"job": "a"'), *lines[2:]], "line 2: not in canonical form"),
    (lambda lines: [lines[0], *lines[1:], lines[2][:-20]], "cut short"),
])
def test_tampering_is_detected_on_load(ledger: dp.PrivacyLedger, change, message: str) -> None:
    charge(ledger, "a", "0.3")
    charge(ledger, "b", "0.3")
    tampered(ledger.path, change)
    with pytest.raises(dp.LedgerError, match=message):
        dp.PrivacyLedger.open(ledger.path, BUDGET, "hospitals-study")


def test_a_rollback_is_detected_with_the_published_head(ledger: dp.PrivacyLedger) -> None:
    charge(ledger, "a", "0.3")
    published = charge(ledger, "b", "0.3").head
    tampered(ledger.path, lambda lines: lines[:2])  # a consistent chain, one spend shorter
    with pytest.raises(dp.LedgerError, match="rolled back"):
        dp.PrivacyLedger.open(ledger.path, BUDGET, "hospitals-study", expected_head=published)


def test_a_budget_cannot_be_raised_on_an_existing_ledger(ledger: dp.PrivacyLedger) -> None:
    bigger = PrivacyBudget(epsilon=10.0, delta=1e-6, outputs=("cohort-statistics",))
    with pytest.raises(dp.LedgerError, match="epsilon=1.0 .*the config says .*epsilon=10.0"):
        dp.PrivacyLedger.open(ledger.path, bigger, "hospitals-study")


def test_privacy_config_is_read_from_the_stack_and_checked() -> None:
    config = MLConfig.load({"config": {"ccp:collaboration": {
        "name": "hospitals-study", "parties": [],
        "privacy": {"epsilon": 3, "delta": 1e-6, "outputs": ["cohort-statistics"]},
        "federated": {"rounds": 3, "secAgg": {"numShares": 3, "reconstructionThreshold": 2}},
    }}})
    assert config.privacy is not None and config.privacy.epsilon == Decimal("3") and config.federated.rounds == 3
    with pytest.raises(ConfigError, match=r"ccp:collaboration.privacy.*epsilon is -1: give a total budget above 0"):
        MLConfig.load({"name": "x", "privacy": {"epsilon": -1}})
    with pytest.raises(ConfigError, match=r"federated.secAgg.reconstructionThreshold: Input should be greater than or equal to 2 \(got 1\)"):
        MLConfig.load({"name": "x", "federated": {"secAgg": {"reconstructionThreshold": 1}}})


def test_opendp_statistics_on_the_joint_data_are_charged_what_opendp_says(ledger: dp.PrivacyLedger) -> None:
    ds = data.load(("a", "b", "c"))
    radius = ds.feature_names.index("mean radius")
    joint = np.concatenate([p.x[:, radius] for p in ds.parties.values()])
    malignant = np.concatenate([p.y for p in ds.parties.values()]) == 0
    queries = [
        dp.Query("cohort-size", "radius", "count", 0.4),
        dp.Query("mean-radius", "radius", "mean", 0.4, (5.0, 30.0)),
        dp.Query("malignant", "malignant", "count", 0.1),
    ]
    loaded = []

    def load() -> dict[str, np.ndarray]:
        loaded.append(True)
        return {"radius": joint, "malignant": joint[malignant]}

    releases, spend = dp.run_job(ledger, "cohort", OUT, queries, load)
    assert loaded == [True] and spend.queries == ("cohort-size", "mean-radius", "malignant")
    assert sum(r.epsilon for r in releases) == spend.epsilon <= Decimal("0.9")
    assert spend.epsilon > Decimal("0.89")  # OpenDP's maps: at most, and close to, what was asked
    assert ledger.remaining[0] == Decimal("1.0") - spend.epsilon
    value = {r.name: r.value for r in releases}
    # Laplace noise at these epsilons: scale 2.5 on the count, 150 on the clamped sum (epsilon 0.2, sensitivity
    # 30); bounds at >= 14 scales (failure odds < 1e-6), still far below what a wrong statistic would give.
    assert abs(value["cohort-size"] - len(joint)) < 60
    assert abs(value["mean-radius"] - joint.mean()) < 5.0
    assert abs(value["malignant"] - malignant.sum()) < 150


def mirrored(ledger: dp.PrivacyLedger, path: Path) -> Path:
    """A signed audit log holding one `privacy-spend` per ledger spend, as the workload writes it."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from enclave_runtime import audit

    with audit.AuditLog(path, ed25519.Ed25519PrivateKey.generate(), audit.Evidence("aws-nitro", b"simulated")) as log:
        for s in ledger.spends:
            log.privacy_spend(ledger.collaboration, s.job, s.output, str(s.epsilon), str(s.delta), s.head)
    return path


def test_a_rewritten_ledger_is_caught_by_the_signed_audit_log(ledger: dp.PrivacyLedger, tmp_path: Path) -> None:
    """A ledger rebuilt with smaller spends is a valid chain of its own; the audit log's spends expose it, and
    an edited audit log does not verify at all (so it cannot vouch for a forged ledger either)."""
    charge(ledger, "a", "0.3")
    charge(ledger, "b", "0.3")
    log = mirrored(ledger, tmp_path / "audit.jsonl")
    audited = dp.audited_spends([log], "hospitals-study")
    assert [s["job"] for s in audited] == ["a", "b"]
    ledger.check_mirrored(audited)
    charge(ledger, "c", "0.1")  # charged, its mirror never written (a crash): over-counted, accepted
    ledger.check_mirrored(audited)

    forged = dp.PrivacyLedger.open(tmp_path / "forged.jsonl", BUDGET, "hospitals-study")
    charge(forged, "a", "0.3")
    charge(forged, "b", "0.01")
    with pytest.raises(dp.LedgerError, match="spend 1 is .*the signed audit log says"):
        forged.check_mirrored(audited)
    shorter = dp.PrivacyLedger.open(tmp_path / "shorter.jsonl", BUDGET, "hospitals-study")
    with pytest.raises(dp.LedgerError, match="audit logs record 2 spends, the ledger 0"):
        shorter.check_mirrored(audited)

    lines = log.read_text().splitlines(keepends=True)
    lines[-1] = lines[-1].replace('"epsilon":"0.3"', '"epsilon":"0.01"')
    log.write_text("".join(lines))
    with pytest.raises(dp.LedgerError, match="does not verify"):
        dp.audited_spends([log], "hospitals-study")
