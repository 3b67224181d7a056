"""The demo's TEE-side job (`python -m enclave_runtime.ml.job`): real partitions as CSV, and one run that
trains with SecAgg+, spends from the budget passed in, and refuses an over-budget job without touching data."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from enclave_runtime.ml import job
from tests.ml.conftest import APPROVED_PCR0, PARTIES

PAIRS = [(p, "records") for p in PARTIES]


@pytest.fixture(scope="module")
def datasets() -> dict[str, str]:
    return job.partitions(PAIRS)


def test_partitions_are_the_non_iid_split_as_csv(datasets: dict[str, str], dataset) -> None:
    assert list(datasets) == [f"{p}/records" for p in PARTIES]
    for party in PARTIES:
        part = job.parse_csv(datasets[f"{party}/records"], dataset.feature_names)
        assert (part.x == dataset.parties[party].x).all() and (part.y == dataset.parties[party].y).all()
    assert job.partitions(PAIRS) == datasets  # deterministic
    with pytest.raises(ValueError, match="header"):
        job.parse_csv("id,value\na,1\n", dataset.feature_names)


def request(tmp_path: Path, datasets: dict[str, str], **extra) -> dict:
    cohort = [{"name": "n", "column": "rows", "kind": "count", "epsilon": 0.5},
              {"name": "r", "column": "mean radius", "kind": "mean", "epsilon": 1.0, "bounds": [5.0, 30.0]}]
    return {
        "collaboration": "hospitals-study", "datasets": datasets, "ledger": str(tmp_path / "ledger.jsonl"),
        "measurements": {"version": "1", "nitro": {"pcr0": APPROVED_PCR0}},
        "budget": {"epsilon": "2.0", "delta": "1e-06", "outputs": ["metrics"]},
        "dp_jobs": [{"job": "a", "output": "metrics", "queries": cohort}, {"job": "b", "output": "metrics", "queries": cohort}],
        **extra,
    }


def test_a_run_over_the_pipe_trains_spends_and_refuses(tmp_path: Path, datasets: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "enclave_runtime.ml.job", "run"], input=json.dumps(request(tmp_path, datasets)),
                          capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    assert result["fl"]["rounds"] == 5 and result["fl"]["secagg"]
    # nothing uncharged about the parties' data: no baseline, no plaintext standardizer (without a DP one the
    # model takes raw features: center 0, scale 1), no MPC totals
    assert set(result["fl"]) == {"clients", "rounds", "secagg", "sec_agg", "released", "auroc_holdout", "model"}
    model = result["fl"]["model"]
    assert set(model) == {"features", "preprocessing", "center", "scale", "weights", "bias"}
    assert model["preprocessing"] == "none" and set(model["center"]) == {0.0} and set(model["scale"]) == {1.0}
    dp = result["dp"]
    assert dp["spent"] == {"epsilon": "1.5", "delta": "0"} and dp["remaining"] == {"epsilon": "0.5", "delta": "0.000001"}
    assert [s["job"] for s in dp["spends"]] == ["a"] and dp["spends"][0]["head"] == dp["head"]
    assert [(r["job"], r["ledger_unchanged"], r["data_loaded"]) for r in dp["refused"]] == [("b", True, False)]
    assert Decimal(dp["spent"]["epsilon"]) + Decimal(dp["remaining"]["epsilon"]) == Decimal(dp["budget"]["epsilon"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.jsonl"]  # no data written anywhere here


def test_no_budget_no_dp(tmp_path: Path, datasets: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="declares no privacy budget"):
        job.run(request(tmp_path, datasets, budget=None))


def test_an_uncharged_sweep_is_refused(tmp_path: Path, datasets: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="dp_sweep is refused"):
        job.run(request(tmp_path, datasets, dp_sweep={"epsilons": [1, 3, 8], "repeats": 2}))
    assert not (tmp_path / "ledger.jsonl").exists() or "spend" not in (tmp_path / "ledger.jsonl").read_text()


def test_clients_per_round_must_be_every_party(tmp_path: Path, datasets: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="clientsPerRound is 2 but 3 parties take part"):
        job.run(request(tmp_path, datasets, federated={"clientsPerRound": 2}))
