"""`make demo`: the whole flow on the dev stack, and a demo that must fail when a recorded policy is wrong."""

from __future__ import annotations

import json
from decimal import Decimal
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
    assert list(record) == ["stack", "decisions", "result", "outputs", "audit", "ppml"]
    assert all(list(d) == ["party", "cloud", "case", "expected", "decision", "reason"] for d in record["decisions"])
    seen = {(d["party"], d["cloud"], d["case"]) for d in record["decisions"]}
    parties = {("clinic-aws", "aws"), ("clinic-azure", "azure"), ("lab-gcp", "gcp")}
    assert seen == {(p, c, case) for p, c in parties for case in CASES}
    for row in record["decisions"]:
        assert row["decision"] == ("granted" if row["case"] == "approved" else "denied"), row
        if row["decision"] == "denied":
            assert row["reason"].startswith(("AWS KMS: ", "Azure Key Vault: ", "GCP STS: ", "Cloud KMS: ")), row
    # the training 75 % of the breast-cancer set (426 of 569 rows), every party's partition unsealed
    assert record["result"] == {"parties": ["clinic-aws", "clinic-azure", "lab-gcp"], "rows": 426}
    assert record["outputs"] == [f"global-model.{p}.sealed" for p in ("clinic-aws", "clinic-azure", "lab-gcp")]
    # genesis + 3 approved releases + 3 unseals + 2 privacy-spends + 3 outputs + 12 refusals
    assert record["audit"] == {"entries": 24, "verified": True}
    assert_ppml(record["ppml"], tmp_path / "demo-dev", output="global-model")


def assert_ppml(ppml: dict, work: Path, *, output: str, model_output: str | None = None) -> None:
    model_output = model_output or output
    fl = ppml["fl"]
    # the stack's ccp:collaboration.federated job plus the DP standardizer, and nothing computed on the parties'
    # data without charge: no non-private/centralized baseline, no epsilon sweep, no plaintext standardizer
    standardizer = Decimal(fl["released"]["standardizer_epsilon"])
    fedavg = Decimal(fl["released"]["epsilon"])  # what the accountant charges at the calibrated noise: <= 8
    assert fl == {
        "clients": 3, "rounds": 5, "secagg": True, "sec_agg": {"num_shares": 3, "reconstruction_threshold": 2},
        "released": {"dp": True, "epsilon": str(fedavg), "delta": "0.000001", "output": model_output,
                     "noise_multiplier": fl["released"]["noise_multiplier"], "clipping_norm": 1.0,
                     "standardizer_epsilon": str(standardizer)},
        "preprocessing": "dp-standardizer", "auroc_holdout": fl["auroc_holdout"],
    }
    assert fl["released"]["noise_multiplier"] > 0.3 and Decimal("0.99") <= standardizer <= 1 and Decimal("7.99") <= fedavg <= 8
    # the recipient's AUROC on held-out rows no party holds: DP noise (epsilon 8 over 3 parties), so only a range
    assert 0 <= fl["auroc_holdout"] <= 1
    assert ppml["mpc"] == {"column": "mean radius", "parties": 3, "equal": True}  # only agreement, no totals
    assert ppml["he"]["rows"] == 64 and ppml["he"]["max_rel_error"] < 1e-6 and ppml["he"]["same_classes"]
    dp = ppml["dp"]
    # the stack's budget, exactly, and exact arithmetic: spent + remaining == total, spent == the one spend
    assert dp["budget"] == {"epsilon": "10.0", "delta": "0.000001", "outputs": list(dict.fromkeys([output, model_output]))}
    total, spent, remaining = (Decimal(dp[k]["epsilon"]) for k in ("budget", "spent", "remaining"))
    assert spent + remaining == total and Decimal(dp["remaining"]["delta"]) + Decimal(dp["spent"]["delta"]) == Decimal("0.000001")
    assert [s["job"] for s in dp["spends"]] == ["federated-model", "cohort-statistics"]
    assert dp["spends"][0]["output"] == model_output and dp["spends"][1]["output"] == output
    stats, model = Decimal(dp["spends"][1]["epsilon"]), Decimal(dp["spends"][0]["epsilon"])
    assert model == fedavg + standardizer and model + stats == spent and Decimal("0.99") <= stats <= 1
    assert sum(Decimal(r["epsilon"]) for r in dp["releases"]) == stats
    values = {r["name"]: r["value"] for r in dp["releases"]}
    assert abs(values["cohort-size"] - 426) < 40 and abs(values["malignant-cases"] - 159) < 40  # Laplace, eps 0.25
    assert 11.0 < values["mean-radius"] < 17.0  # true mean ~14.1, clamped to [5, 30], eps 0.5
    # the rerun over budget and the undeclared output: refused before loading data, ledger unchanged
    refused = {r["job"]: r for r in dp["refused"]}
    assert set(refused) == {"cohort-statistics-rerun", "per-site-statistics"}
    assert all(r["ledger_unchanged"] and not r["data_loaded"] for r in refused.values())
    assert f"remaining budget is epsilon={remaining}" in refused["cohort-statistics-rerun"]["reason"]
    assert "privacy.outputs does not declare" in refused["per-site-statistics"]["reason"]
    # the ledger holds the budget and the one spend; its head is the spend mirrored in the signed audit log
    ledger = [json.loads(line) for line in (work / "privacy-ledger.jsonl").read_text().splitlines()]
    assert [e["event"] for e in ledger] == ["budget", "spend", "spend"]
    audited = [json.loads(line)["data"] for line in (work / "audit.jsonl").read_text().splitlines()
               if json.loads(line)["event"] == "privacy-spend"]
    assert audited == [
        {"collaboration": ledger[0]["data"]["collaboration"], "job": "federated-model", "output": model_output,
         "epsilon": str(model), "delta": "0.000001", "head": dp["spends"][0]["head"]},
        {"collaboration": ledger[0]["data"]["collaboration"], "job": "cohort-statistics", "output": output,
         "epsilon": str(stats), "delta": "0", "head": dp["ledger_head"]},
    ]


def test_hospitals_demo_trains_across_three_hospitals_and_spends_on_the_declared_output(tmp_path: Path) -> None:
    assert demo.run("hospitals", quiet=True, out=tmp_path) == 0
    record = json.loads((tmp_path / "demo-hospitals.json").read_text())
    # the model goes to sepsis-model, the DP statistics (and metrics) to validation-metrics
    assert record["outputs"] == [f"{o}.{p}.sealed" for o in ("sepsis-model", "validation-metrics")
                                 for p in ("hospital-aws", "hospital-azure", "hospital-gcp")]
    assert record["audit"] == {"entries": 27, "verified": True}
    assert_ppml(record["ppml"], tmp_path / "demo-hospitals", output="validation-metrics", model_output="sepsis-model")


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
    # without every party's data the approved job does not run (nothing is trained, spent or released)
    record = _record(tmp_path)
    assert record["ppml"] == {"fl": None, "dp": None, "skipped": "datasets not released: lab-gcp/genotypes"}
    assert record["outputs"] == []


def test_demo_statistics_spend_what_the_planned_spends_leave() -> None:
    from stacks.config import parse, read_stack_file

    collaboration = parse(read_stack_file(demo.REPO_ROOT / "Pulumi.dev.yaml")).collaboration
    jobs = demo.dp_jobs(collaboration.privacy, collaboration.federated)
    # 10 - (DP standardizer 1 + DP-FedAvg 8) = 1, spent as 1/4 + 1/2 + 1/4
    assert [q["epsilon"] for q in jobs[0]["queries"]] == [0.25, 0.5, 0.25]
    greedy = collaboration.federated.model_copy(update={"dp": collaboration.federated.dp.model_copy(update={"epsilon": 9.0})})
    with pytest.raises(ValueError, match="leaves nothing for the demo's DP statistics"):
        demo.dp_jobs(collaboration.privacy, greedy)
    by_noise = collaboration.federated.model_copy(
        update={"dp": collaboration.federated.dp.model_copy(update={"epsilon": None, "noise_multiplier": 1.1})})
    with pytest.raises(ValueError, match="give federated.dp.epsilon"):
        demo.dp_jobs(collaboration.privacy, by_noise)
