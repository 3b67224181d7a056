"""The privacy-preserving job as one process: what the demo runs inside its TEE boundary, in `.venv-ml`.

    python -m enclave_runtime.ml.job partitions   # stdin {"datasets": [[party, dataset], ...]}
    python -m enclave_runtime.ml.job run          # stdin: the request below; stdout: the result

`partitions` writes each dataset's rows of scikit-learn's breast-cancer set (the non-IID split of
`data.load`, by party; a party with several datasets gets its rows round-robin) as CSV: the 30 features
and `label`. It is how the demo's parties get real data to seal.

`run` reads one JSON request from stdin: the plaintext of every unsealed dataset (the caller unsealed them
after attested key release; they arrive over the pipe, never through a file), the collaboration's budget as
the stack's model validated it (`ccp:collaboration.privacy`, decimal strings), the ledger path, the approved
measurements (the aggregator's attestation gate checks them) and the DP jobs to run. It trains with SecAgg+
(`fl.run_federated`), runs each DP job against the ledger (`dp.run_job`; a refused job writes nothing and
never loads data) and writes one JSON result to stdout: model, metrics, releases, every spend with its
ledger head (for the caller's audit log), the refusals, and spent/remaining as exact decimal strings.
Nothing here writes data to disk; the ledger holds amounts only. Nothing uncharged about the parties' data
leaves either: no baseline trained on it, no epsilon sweep (`dp_sweep` is refused), no plaintext
standardizer (the model's feature scaling is the DP standardizer, charged with it), and of the MPC
statistic only whether it equals the plaintext computation. The one accuracy figure is the released
model's AUROC on the held-out split, which no party holds: the recipient's own evaluation of a DP
release, so it costs nothing (post-processing).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import numpy as np

from . import data, dp, fl
from .config import FederatedJob, PrivacyBudget

LABEL = "label"


def partitions(datasets: Sequence[tuple[str, str]]) -> dict[str, str]:
    """`party/dataset` -> CSV text of its rows (header: the 30 feature names, then `label`)."""
    parties = list(dict.fromkeys(party for party, _ in datasets))
    split = data.load(parties)
    out: dict[str, str] = {}
    for party in parties:
        names = [name for p, name in datasets if p == party]
        part = split.parties[party]
        for k, name in enumerate(names):
            rows = slice(k, None, len(names))
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow([*split.feature_names, LABEL])
            for x, y in zip(part.x[rows], part.y[rows], strict=True):
                writer.writerow([repr(float(v)) for v in x] + [int(y)])
            out[f"{party}/{name}"] = text.getvalue()
    return out


def parse_csv(text: str, features: Sequence[str]) -> data.Partition:
    """One dataset's CSV back into a partition; the header must be exactly the features and `label`."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header != [*features, LABEL]:
        raise ValueError(f"dataset header is {header[:3] if header else header}..., expected the 30 features and {LABEL!r}")
    rows = [[float(v) for v in row] for row in reader if row]
    matrix = np.asarray(rows, dtype=np.float64).reshape(-1, len(features) + 1)
    labels = matrix[:, -1]
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("dataset labels must be 0 (malignant) or 1 (benign)")
    return data.Partition(matrix[:, :-1], labels)


def simulated_identity(sim: Any, channel_key: bytes, pcrs: Mapping[int, bytes] | None = None,
                       debug: bool = False) -> Any:
    """A simulated aggregator's identity: evidence from the runtime's collector path (SHA-256 of the channel
    key as report data, Nitro `user_data`), as the SuperLink's launcher obtains it on hardware."""
    from enclave_runtime.serve.evidence import SimulatedNitroCollector
    from enclave_runtime.serve.tls import report_data

    from .attestation import AggregatorIdentity

    evidence = SimulatedNitroCollector(sim, pcrs, debug=debug).collect(report_data(channel_key, b""))
    return AggregatorIdentity(evidence.kind, evidence.evidence, channel_key)


def simulated_aggregator(measurements: Mapping[str, Any], parties: Iterable[str]) -> tuple[Any, dict[str, Any]]:
    """The aggregator's identity (simulated Nitro evidence carrying the stack's approved PCRs, bound to its
    channel key) and every party's gate, checking it with the trust store and policy below.

    The aggregator here is a simulated enclave, so the gate's policy is a dev policy (it accepts the
    simulation root, which a prod policy refuses) pinning the stack's own approved measurements: an
    aggregator with other PCRs is still refused. On real hardware the gate uses the stack's environment."""
    from enclave_runtime.attest import TrustStore
    from enclave_runtime.policy import Policy
    from enclave_runtime.serve.evidence import pcrs_from_policy
    from enclave_runtime.simulate.nitro import SimulatedNitro

    from .attestation import AttestationGate

    policy = Policy.load({"environment": "dev", "measurements": measurements})
    sim = SimulatedNitro()
    channel_key = hashlib.sha256(f"aggregator channel {dt.datetime.now(dt.timezone.utc).isoformat()}".encode()).digest()
    pcrs = pcrs_from_policy(measurements.get("nitro") or {})
    identity = simulated_identity(sim, channel_key, pcrs)
    store = TrustStore(simulation_roots=[sim.root])
    return identity, {party: AttestationGate(store, policy) for party in parties}


def _gated(result: fl.FederatedResult, what: str) -> fl.NDArrays:
    """A run some party refused (its gate did not admit the aggregator) yields nothing: the job stops there
    instead of releasing a result computed without every party."""
    if result.parameters is None:
        raise RuntimeError(f"{what} produced nothing: refusals {result.refusals}")
    return result.parameters


def _charge_epsilon(value: float) -> Decimal:
    """An accountant's epsilon as the ledger's decimal, rounded up (never under-charged) to 1e-6."""
    return (Decimal(repr(value)) * 1_000_000).to_integral_value(rounding=ROUND_CEILING) / 1_000_000


def _federated(
    parts: Mapping[str, data.Partition], request: Mapping[str, Any], split: data.Dataset,
    ledger: dp.PrivacyLedger | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Train the released model, and its DP standardizer when the job has one. Both are charged to the
    ledger as one spend (`federated-model`: the standardizer's Laplace epsilon, DP-FedAvg's (epsilon,
    delta)) before any party computes anything; refused, nothing runs.

    Nothing uncharged leaves: no baseline trained on the parties' data, no epsilon sweep, no plaintext
    standardizer. Without `federated.standardizer` the model takes raw features (`Standardizer.identity`)."""
    if request.get("dp_sweep"):
        raise ValueError("dp_sweep is refused: an epsilon sweep evaluated on the parties' data is an uncharged "
                         "release (measure utility on public data, as tests/ml does)")
    job = FederatedJob.model_validate(request.get("federated") or {})
    job.check_parties(len(parts))
    features = len(split.feature_names)
    bounds = data.Bounds.of(split.feature_names)
    scaling = None
    charges: list[dp.Charge] = []
    if job.standardizer is not None:
        sensitivity = fl.standardizer_sensitivity(job, features)
        scaling = dp.laplace_mechanism(job.standardizer.epsilon, sensitivity)
        charges.append(dp.Charge("dp-standardizer", Decimal(str(float(scaling.map(sensitivity))))))
    if job.dp is not None:
        charges.append(dp.Charge("dp-fedavg", _charge_epsilon(job.dp.spent_epsilon(job.rounds)), Decimal(repr(job.dp.delta))))
    spend = None
    if charges:
        if ledger is None:
            raise ValueError("federated.dp or federated.standardizer is set but the collaboration declares no "
                             "privacy budget to charge it to")
        output = (job.dp.output if job.dp is not None else None) or (ledger.budget.outputs[0] if ledger.budget.outputs else "model")
        charged = ledger.charge("federated-model", output, charges)
        spend = {"job": charged.job, "output": charged.output, "epsilon": str(charged.epsilon),
                 "delta": str(charged.delta), "queries": list(charged.queries), "head": charged.head}
    identity, gates = simulated_aggregator(request["measurements"], parts)
    loaders = {p: (lambda p=p: parts[p]) for p in parts}
    standardize = data.Standardizer.identity(features)
    if scaling is not None:
        noisy = _gated(fl.run_moments(job, loaders, bounds, scaling, gates, identity), "the DP standardizer")
        standardize = data.Standardizer.from_noisy_moments(data.Moments.from_vector(noisy[0]), bounds)
    released = fl.run_federated(job, loaders, standardize, features, gates, identity)
    params = _gated(released, "federated training")
    by_query = {c.query: c for c in charges}
    out = {
        "clients": len(parts),
        "rounds": released.rounds_completed,
        "secagg": job.secure_aggregation,
        "sec_agg": {"num_shares": job.sec_agg.num_shares, "reconstruction_threshold": job.sec_agg.reconstruction_threshold},
        "released": {
            "dp": job.dp is not None,
            **({"epsilon": str(by_query["dp-fedavg"].epsilon), "delta": str(by_query["dp-fedavg"].delta),
                "output": spend["output"], "noise_multiplier": round(job.dp.resolved_noise_multiplier(job.rounds), 6),
                "clipping_norm": job.dp.clipping_norm} if job.dp is not None and spend is not None else {}),
            **({"standardizer_epsilon": str(by_query["dp-standardizer"].epsilon)} if scaling is not None else {}),
        },
        # the recipient's evaluation on its own labelled rows (the held-out split, which no party holds)
        "auroc_holdout": round(fl.auroc(params, standardize(split.test.x), split.test.y), 4),
        "model": {
            "features": list(split.feature_names),
            "preprocessing": "dp-standardizer" if scaling is not None else "none",
            "center": [float(v) for v in standardize.center],
            "scale": [float(v) for v in standardize.scale],
            "weights": [float(v) for v in params[0]],
            "bias": float(params[1][0]),
        },
    }
    return out, spend


def _columns(parts: Mapping[str, data.Partition], features: Sequence[str]) -> dict[str, np.ndarray]:
    """The joint data's columns for DP queries: every feature by name, `rows` (one 0.0 per row, for
    counts) and `malignant` (one 0.0 per malignant row: its count is the malignant cohort size)."""
    x = np.vstack([p.x for p in parts.values()])
    y = np.concatenate([p.y for p in parts.values()])
    columns = {name: x[:, i] for i, name in enumerate(features)}
    columns["rows"] = np.zeros(len(y))
    columns["malignant"] = np.zeros(int((y == 0).sum()))
    return columns


def _ledger(request: Mapping[str, Any]) -> dp.PrivacyLedger | None:
    """The ledger of the collaboration's budget; None when no budget is declared (then no DP job may run)."""
    b = request.get("budget")
    if b is None:
        if request.get("dp_jobs"):
            raise ValueError("DP jobs were requested but the collaboration declares no privacy budget")
        return None
    budget = PrivacyBudget(epsilon=b["epsilon"], delta=b["delta"], outputs=tuple(b["outputs"]))
    return dp.PrivacyLedger.open(Path(request["ledger"]), budget, request["collaboration"], expected_head=request.get("expected_head"))


def _dp(parts: Mapping[str, data.Partition], request: Mapping[str, Any], features: Sequence[str],
        ledger: dp.PrivacyLedger | None, prior: Sequence[dict[str, Any]] = ()) -> dict[str, Any] | None:
    """Every DP job against the ledger (`prior`: spends this run already made, e.g. DP-FedAvg's)."""
    if ledger is None:
        return None
    budget = ledger.budget
    ledger_path = ledger.path
    releases: list[dict[str, Any]] = []
    spends: list[dict[str, Any]] = list(prior)
    refused: list[dict[str, Any]] = []
    for spec in request.get("dp_jobs", []):
        queries = [
            dp.Query(q["name"], q["column"], q["kind"], float(q["epsilon"]), tuple(q["bounds"]) if q.get("bounds") else None)
            for q in spec["queries"]
        ]
        before = ledger_path.read_bytes()
        loaded: list[bool] = []

        def load() -> dict[str, np.ndarray]:
            loaded.append(True)
            return _columns(parts, features)

        try:
            done, spend = dp.run_job(ledger, spec["job"], spec["output"], queries, load)
        except dp.BudgetExceeded as exc:
            refused.append({
                "job": spec["job"], "output": spec["output"],
                "epsilon": str(sum((Decimal(str(q.epsilon)) for q in queries), Decimal(0))),
                "reason": str(exc), "data_loaded": bool(loaded),
                "ledger_unchanged": ledger_path.read_bytes() == before,
            })
            continue
        releases += [
            {"job": spec["job"], "output": spec["output"], "name": r.name, "value": r.value, "epsilon": str(r.epsilon)}
            for r in done
        ]
        spends.append({
            "job": spend.job, "output": spend.output, "epsilon": str(spend.epsilon), "delta": str(spend.delta),
            "queries": list(spend.queries), "head": spend.head,
        })
    remaining = ledger.remaining
    return {
        "budget": {"epsilon": str(budget.epsilon), "delta": str(budget.delta), "outputs": list(budget.outputs)},
        "spent": {"epsilon": str(ledger.spent_epsilon), "delta": str(ledger.spent_delta)},
        "remaining": {"epsilon": str(remaining[0]), "delta": str(remaining[1])},
        "releases": releases,
        "spends": spends,
        "refused": refused,
        "head": ledger.head,
    }


def run(request: Mapping[str, Any]) -> dict[str, Any]:
    """The whole job on the unsealed datasets of `request` (see the module docstring)."""
    split = data.load(list(dict.fromkeys(name.split("/")[0] for name in request["datasets"])))
    by_party: dict[str, list[data.Partition]] = {}
    for name, text in request["datasets"].items():
        by_party.setdefault(name.split("/")[0], []).append(parse_csv(text, split.feature_names))
    parts = {
        party: data.Partition(np.vstack([p.x for p in ps]), np.concatenate([p.y for p in ps]))
        for party, ps in by_party.items()
    }
    ledger = _ledger(request)
    federated, spend = _federated(parts, request, split, ledger)
    result = {"fl": federated, "dp": _dp(parts, request, split.feature_names, ledger, [spend] if spend else [])}
    if request.get("he_batch"):
        result["he"] = _he(federated["model"], split, int(request["he_batch"]))
    if request.get("mpc"):
        result["mpc"] = _mpc(parts, split.feature_names, request["mpc"])
    return result


def _he(model: Mapping[str, Any], split: data.Dataset, rows: int) -> dict[str, Any]:
    """A recipient scores `rows` of the held-out set on the released model without showing them: it
    standardizes its rows with the model's released center and scale, encrypts them (CKKS), the enclave
    scores the ciphertexts, the recipient decrypts. Reported: the largest difference from the plaintext
    logits (absolute, and relative to the largest logit) and whether every predicted class agrees."""
    from .he import HEClient, HEScorer

    x = data.Standardizer(np.asarray(model["center"]), np.asarray(model["scale"]))(split.test.x[:rows])
    client = HEClient()
    batch = client.encrypt(x)
    decrypted = client.decrypt(HEScorer(model["weights"], model["bias"]).score(batch), batch.rows)
    plain = x @ np.asarray(model["weights"]) + model["bias"]
    error = float(np.max(np.abs(decrypted - plain)))
    # CKKS is fixed-point: its error grows with the magnitude of the values (raw features reach ~2500 when
    # the model has no standardizer), so the relative error is the figure to judge; the absolute one too.
    return {"rows": batch.rows, "max_abs_error": error, "max_rel_error": error / max(1.0, float(np.max(np.abs(plain)))),
            "same_classes": bool(((decrypted > 0) == (plain > 0)).all())}


def _mpc(parts: Mapping[str, data.Partition], features: Sequence[str], spec: Mapping[str, Any]) -> dict[str, Any]:
    """Cohort size, malignant count and a column's mean across the parties by MPyC (one process per party),
    compared with the plaintext computation on the same rows. Only whether they agree leaves the job: the
    opened totals are exact (un-noised) figures about the parties' data, so they are not released here."""
    from . import mpc

    column, scale = features.index(spec.get("column", "mean radius")), int(spec.get("scale", 1000))
    vectors = {p: mpc.cohort_vector(part.x.tolist(), part.y.tolist(), column, scale) for p, part in parts.items()}
    secure = mpc.cohort_statistics(mpc.secure_sum(vectors), scale)
    plain = mpc.cohort_statistics([sum(v[k] for v in vectors.values()) for k in range(3)], scale)
    return {"column": features[column], "parties": len(vectors), "equal": secure == plain}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args not in (["partitions"], ["run"]):
        print("usage: python -m enclave_runtime.ml.job partitions|run  (JSON on stdin, JSON on stdout)", file=sys.stderr)
        return 2
    request = json.load(sys.stdin)
    out = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the result only, whatever a library prints
            if args == ["partitions"]:
                result: Any = partitions([(p, d) for p, d in request["datasets"]])
            else:
                result = run(request)
    except Exception as exc:  # noqa: BLE001 -- one line for the caller, never a traceback with data in it
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    json.dump(result, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
