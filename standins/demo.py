"""`make demo [STACK=dev]`: a collaboration end to end on this machine, no cloud, no credentials.

1. the review of the stack (its recorded policies are what the stand-ins enforce);
2. the stand-ins of each party's key service start (AWS KMS, Azure Attestation + Key Vault, GCP STS +
   Cloud KMS), speaking the real APIs to the official SDKs;
3. each party seals its dataset on "its own machine" under its party key (the owner may only wrap) and an
   AWS party uploads it to its recorded data bucket (moto's S3 server), whence the workload streams it. The
   datasets are real: the parties' non-IID partitions of scikit-learn's breast-cancer set, as CSV;
4. the workload runs in the simulated TEE with the approved measurements: each party key is released
   by its own cloud and the datasets are unsealed inside;
5. the privacy-preserving job runs in the ML environment (`.venv-ml`) as a child process, the unsealed data
   reaching it over a pipe only: the stack's federated job (`ccp:collaboration.federated`: DP-FedAvg with
   SecAgg+ behind the aggregator's attestation gate, with a DP standardizer, charged before training), and DP statistics charged to the collaboration's budget (`ccp:collaboration.privacy`) in the privacy
   ledger; a rerun that would exceed the budget and a job feeding an undeclared output are refused, the
   ledger unchanged. Each spend is mirrored into the signed audit log (`privacy-spend`), and each output is
   sealed to its declared recipients only;
6. the same release is tried as a debug build, an unapproved image, another collaboration's workload
   and an unattested caller: each must be refused by the stack's own policy, with the service's reason;
7. the audit log the workload wrote is verified.
Exit 0 only if every decision matches what the stack promises; `out/demo-STACK.json` records them.
"""

from __future__ import annotations

import argparse
import io
import datetime as dt
import json
import random
import sys
import time
import warnings
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from enclave_runtime import audit as audit_log
from enclave_runtime.attest.collateral import AMD_SERIAL_ZERO_WARNING
from enclave_runtime.keyrelease import KeyReleaseError, KeySession, WrappedKey
from enclave_runtime.recipients import RecipientOpener, RecipientWrapper
from enclave_runtime.seal import SealError, open_sealed, seal
from enclave_runtime.simulate.nitro import SimulatedNitro
from enclave_runtime.workload import (
    SealedInput, ml_process, record_privacy_spends, run_private_job, seal_outputs, unseal,
)
from policies.review import project
from policies.review.run import REPO_ROOT, ccp_settings, run_review
from standins.cloud import CASES, EXPECTED, CloudStandIns
from standins.stack import PartyKey, load, party_keys
from standins.storage import S3StandIn, party_bucket

OUT = REPO_ROOT / "out"
SAMPLE_ROWS = 2000


def _start(cloud: str, recording: Any, settings: Any) -> CloudStandIns:
    if cloud == "aws":
        from standins.aws_kms import AwsStandIns

        return AwsStandIns(recording, settings)
    if cloud == "azure":
        from standins.azure import AzureStandIns

        return AzureStandIns(recording, settings)
    from standins.gcp import GcpStandIns

    section = settings.collaboration.measurements.confidential_space
    return GcpStandIns(recording, list(section.image_digests) if section is not None else [])


class DemoError(Exception):
    """The demo cannot judge anything (its precondition failed); exit 2 with this message."""


class Progress:
    """One line per step, with its time; quiet under `--json`."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet, self.done = total, quiet, 0

    def step(self, title: str) -> "_Step":
        self.done += 1
        return _Step(self, f"[{self.done}/{self.total}] {title}")


@dataclass
class _Step:
    progress: Progress
    title: str
    started: float = field(default_factory=time.monotonic)

    def __enter__(self) -> "_Step":
        if not self.progress.quiet:
            print(f"{self.title} ...", flush=True)
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        if not self.progress.quiet:
            status = "ok" if kind is None else "FAILED"
            print(f"    {status} ({time.monotonic() - self.started:.1f}s)", flush=True)


def sample_dataset(party: str, dataset: str, rows: int = SAMPLE_ROWS) -> bytes:
    """A deterministic CSV per (party, dataset): `id,value` rows."""
    rng = random.Random(f"{party}/{dataset}")
    body = "".join(f"{party}-{i},{rng.gauss(50, 10):.3f}\n" for i in range(rows))
    return ("id,value\n" + body).encode()


def real_datasets(collaboration: Any) -> dict[str, bytes]:
    """`party/dataset` -> CSV of that dataset's rows of the breast-cancer set (generated in `.venv-ml`,
    where scikit-learn is): the parties' non-IID partitions, deterministic, nothing downloaded."""
    pairs = [[p.name, d.name] for p in collaboration.parties for d in p.datasets]
    return {name: text.encode() for name, text in ml_process("partitions", {"datasets": pairs}).items()}


def dp_jobs(privacy: Any, federated: Any) -> list[dict[str, Any]]:
    """The DP statistics the workload releases, sized from the budget: `cohort-statistics` spends what the
    stack's planned spends (the DP standardizer and DP-FedAvg, `federated`) leave of epsilon, on the first
    output that `privacy.outputs` names; its rerun would exceed what is left, and a job feeding an output the
    budget does not name is refused whatever it costs."""
    if privacy is None:
        return []
    planned = federated.planned_epsilon if federated is not None else 0.0
    if planned is None:
        raise ValueError("ccp:collaboration.federated.dp gives noiseMultiplier, not epsilon: the demo sizes its DP "
                         "statistics from the planned epsilon, so give federated.dp.epsilon for `make demo`")
    left = privacy.epsilon - planned
    if left <= 0:
        raise ValueError(f"ccp:collaboration.privacy.epsilon {privacy.epsilon} leaves nothing for the demo's DP "
                         f"statistics after the federated job's planned {planned}: raise the budget")
    quarter = left / 4
    output = privacy.outputs[0]
    cohort = [
        {"name": "cohort-size", "column": "rows", "kind": "count", "epsilon": quarter},
        {"name": "mean-radius", "column": "mean radius", "kind": "mean", "epsilon": 2 * quarter, "bounds": [5.0, 30.0]},
        {"name": "malignant-cases", "column": "malignant", "kind": "count", "epsilon": quarter},
    ]
    return [
        {"job": "cohort-statistics", "output": output, "queries": cohort},
        {"job": "cohort-statistics-rerun", "output": output, "queries": cohort},
        {"job": "per-site-statistics", "output": "per-site-statistics",
         "queries": [{"name": "site-size", "column": "rows", "kind": "count", "epsilon": quarter}]},
    ]


def output_payloads(collaboration: Any, job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What each declared output carries: every output the federated job's parameters (no figure computed
    on the parties' data: no AUROC, no baseline); the model, with its DP standardizer's center and scale,
    goes to the output DP-FedAvg charged it to (the
    first declared output without `federated.dp`); an output the budget names the DP releases charged to it
    (and nothing else is released)."""
    fl = job["fl"]
    training = {k: fl[k] for k in ("clients", "rounds", "secagg", "sec_agg", "released")}
    model_output = fl["released"].get("output") or collaboration.outputs[0].name
    payloads: dict[str, dict[str, Any]] = {}
    for output in collaboration.outputs:
        payload: dict[str, Any] = {"training": training}
        if output.name == model_output:
            payload["model"] = fl["model"]
        releases = [r for r in (job["dp"] or {}).get("releases", []) if r["output"] == output.name]
        if releases:
            payload["dp"] = releases
        payloads[output.name] = payload
    return payloads


def _decision(key: PartyKey, case: str, decision: str, reason: str) -> dict[str, str]:
    return {
        "party": key.party,
        "cloud": key.cloud,
        "case": case,
        "expected": EXPECTED[case],
        "decision": decision,
        "reason": reason,
    }


def _try_release(
    release: Callable[[WrappedKey], bytes], key: PartyKey, case: str, wrapped: WrappedKey, audit: Any
) -> tuple[dict[str, str], bytes | None]:
    try:
        data_key = release(wrapped)
    except KeyReleaseError as error:
        audit.key_release(key.cloud, wrapped.key_id, False, f"{case}: {error.service}: {error.reason}")
        return _decision(key, case, "denied", f"{error.service}: {error.reason}"), None
    audit.key_release(key.cloud, wrapped.key_id, True, f"{case}: released")
    return _decision(key, case, "granted", "released"), data_key


def run(stack: str, *, quiet: bool = False, out: Path = OUT) -> int:
    progress = Progress(8, quiet)
    work = out / f"demo-{stack}"
    work.mkdir(parents=True, exist_ok=True)
    with progress.step(f"review of stack {stack!r}"):
        review = run_review(REPO_ROOT, stack, out)
        if review.exit_code != 0:
            problems = "".join(f"\n  {problem}" for problem in review.problems)
            raise DemoError(f"the review of {stack!r} did not pass (exit {review.exit_code}): fix it first{problems}")
    recording = load(out / f"review-{stack}.json")
    settings = ccp_settings(project.load(REPO_ROOT, stack))
    collaboration = settings.collaboration
    keys = party_keys(recording)
    decisions: list[dict[str, str]] = []
    with ExitStack() as running:
        with progress.step("start the key-service stand-ins and the AWS parties' buckets (moto S3)"):
            services: dict[str, CloudStandIns] = {}
            for cloud in sorted({k.cloud for k in keys}):
                services[cloud] = _start(cloud, recording, settings)
                running.callback(services[cloud].stop)
            s3 = S3StandIn() if any(k.cloud == "aws" for k in keys) else None
            if s3 is not None:
                running.callback(s3.stop)

        sealed: dict[str, SealedInput] = {}
        wrapped_keys: dict[str, WrappedKey] = {}
        with progress.step("each party seals its datasets under its own key (AWS parties upload to their bucket)"):
            plaintexts = real_datasets(collaboration)
            for key in keys:
                party = next(p for p in collaboration.parties if p.name == key.party)
                for dataset in party.datasets:
                    path = work / f"{key.party}.{dataset.name}.sealed"
                    with path.open("wb") as sink:
                        header = seal(
                            io.BytesIO(plaintexts[f"{key.party}/{dataset.name}"]), sink, collaboration=collaboration.name,
                            party=key.party, dataset=dataset.name, wrapper=services[key.cloud].wrapper(key),
                        )
                    name = f"{key.party}/{dataset.name}"
                    wrapped_keys[name] = header.wrapped_key
                    if key.cloud == "aws" and s3 is not None:
                        sealed[name] = _in_bucket(s3, recording, key.party, dataset.name, path)
                    else:
                        sealed[name] = SealedInput.file(key.party, dataset.name, path)

        log_path = work / "audit.jsonl"
        log_path.unlink(missing_ok=True)
        signer = ed25519.Ed25519PrivateKey.generate()
        nsm = SimulatedNitro()
        audit = audit_log.AuditLog(log_path, signer, _audit_evidence(nsm, signer))
        running.callback(audit.close)
        ledger_path = work / "privacy-ledger.jsonl"
        ledger_path.unlink(missing_ok=True)  # a new run of the demo is a new collaboration run: a fresh budget
        with progress.step("the approved workload: release each party key on its own cloud, unseal"):
            unsealed: dict[str, bytes] = {}
            for key in keys:
                for name, item in sealed.items():
                    if item.party != key.party:
                        continue
                    # The session caches the released key: unsealing makes no second key-service call.
                    session = KeySession({key.cloud: services[key.cloud].releaser(key, "approved")})
                    row, data_key = _try_release(session.data_key, key, "approved", wrapped_keys[name], audit)
                    decisions.append(row)
                    if data_key is not None:
                        unsealed[name] = unseal(item, collaboration=collaboration.name, data_key_for=session.data_key, audit=audit)
                    session.close()
            result = {
                "parties": sorted({name.split("/")[0] for name in unsealed}),
                "rows": sum(text.count(b"\n") - 1 for text in unsealed.values()),
            }

        with progress.step("the privacy-preserving job in .venv-ml (data over a pipe): FL with SecAgg+, DP statistics"):
            privacy = collaboration.privacy
            request: dict[str, Any] = {
                "collaboration": collaboration.name,
                "measurements": collaboration.measurements.model_dump(mode="json", by_alias=True, exclude_none=True),
                "ledger": str(ledger_path),
                "dp_jobs": dp_jobs(privacy, collaboration.federated),
            }
            request["he_batch"] = 64  # one held-out batch scored on ciphertext by a recipient
            request["mpc"] = {"column": "mean radius"}  # cohort statistic across the parties by MPyC
            if privacy is not None:  # the model's values, as exact decimal strings for the ledger
                request["budget"] = {"epsilon": repr(privacy.epsilon), "delta": repr(privacy.delta), "outputs": list(privacy.outputs)}
            if collaboration.federated is not None:
                # the job the parties approved (ccp:collaboration.federated): rounds, SecAgg+, the DP standardizer
                # and DP-FedAvg, whose spend is charged to dp.output before any party trains
                request["federated"] = collaboration.federated.model_dump(mode="json", by_alias=True, exclude_none=True)
            missing = sorted({f"{p.name}/{d.name}" for p in collaboration.parties for d in p.datasets} - set(unsealed))
            job: dict[str, Any] | None = None
            if not missing:  # the job the parties approved runs on every party's data, or not at all
                job = run_private_job(unsealed, request)
                record_privacy_spends(audit, collaboration.name, (job["dp"] or {}).get("spends", []))
            unsealed.clear()

        recipients = {p.name: rsa.generate_private_key(public_exponent=65537, key_size=3072) for p in collaboration.parties}
        with progress.step("seal each output to its declared recipients only"):
            recipient_keys = {n: RecipientWrapper(n, k.public_key()) for n, k in recipients.items()}
            written = []
            for output in (collaboration.outputs if job is not None else []):
                written += seal_outputs(
                    output_payloads(collaboration, job)[output.name], collaboration=collaboration.name,
                    outputs={output.name: list(output.recipients)}, recipients=recipient_keys, out_dir=work, audit=audit,
                )
            opened = _open_outputs(written, recipients, collaboration.name)

        with progress.step("the same release as a debug build, an unapproved image, another collaboration, an unattested caller"):
            for key in keys:
                wrapped = next(w for n, w in wrapped_keys.items() if n.startswith(f"{key.party}/"))
                for case in CASES:
                    if case == "approved":
                        continue
                    row, _ = _try_release(services[key.cloud].releaser(key, case).unwrap, key, case, wrapped, audit)
                    decisions.append(row)

    with progress.step("verify the audit log (chain, signatures, and the evidence binding its key)"):
        report = audit_log.verify(log_path, check_evidence=partial(_check_audit_evidence, nsm))
    verified = report.status == "valid" and report.evidence_checked
    ppml = _ppml(job) if job is not None else {"fl": None, "dp": None, "skipped": f"datasets not released: {', '.join(missing)}"}
    ppml_ok = job is not None and _ppml_ok(ppml, report.events.get("privacy-spend", 0), collaboration.privacy is not None)
    ok = all(d["decision"] == d["expected"] for d in decisions) and verified and opened and ppml_ok
    record = {
        "stack": stack,
        "decisions": decisions,
        "result": result,
        "outputs": [p.name for p in written],
        "audit": {"entries": report.entries, "verified": verified},
        "ppml": ppml,
    }
    (out / f"demo-{stack}.json").write_text(json.dumps(record, indent=2) + "\n")
    if not quiet:
        print(_table(decisions))
        print(f"datasets: {result['rows']} rows of the breast-cancer set across {', '.join(result['parties'])}")
        print(_ppml_summary(ppml))
        print(f"outputs: {', '.join(p.name for p in written)} (each opens only with its recipient's key: {opened})")
        print(f"audit log: {report.entries} entries, {'verified' if verified else 'NOT verified: ' + report.message}")
        print(f"decisions: {out / f'demo-{stack}.json'}")
        print("PASS: every decision matches the stack's policies" if ok else "FAIL: see the rows marked ✗")
    return 0 if ok else 1


def _ppml(job: dict[str, Any]) -> dict[str, Any]:
    """The `ppml` block of out/demo-STACK.json (no model weights, no data: figures and decisions only)."""
    fl = job["fl"]
    block: dict[str, Any] = {"fl": {
        "clients": fl["clients"], "rounds": fl["rounds"], "secagg": fl["secagg"], "sec_agg": fl["sec_agg"],
        "released": fl["released"], "preprocessing": fl["model"]["preprocessing"], "auroc_holdout": fl["auroc_holdout"],
    }, "dp": None, "he": job.get("he"), "mpc": job.get("mpc")}
    if job["dp"] is not None:
        dp = job["dp"]
        block["dp"] = {
            "budget": dp["budget"], "spent": dp["spent"], "remaining": dp["remaining"],
            "spends": [{k: s[k] for k in ("job", "output", "epsilon", "delta", "head")} for s in dp["spends"]],
            "releases": [{k: r[k] for k in ("job", "output", "name", "value", "epsilon")} for r in dp["releases"]],
            "refused": dp["refused"], "ledger_head": dp["head"],
        }
    return block


def _ppml_ok(ppml: dict[str, Any], audited_spends: int, budgeted: bool) -> bool:
    """The job trained every round with SecAgg+; with a budget: something was spent and mirrored in the audit
    log, and each refused job loaded no data and left the ledger as it was."""
    fl = ppml["fl"]
    if not (fl["secagg"] and fl["rounds"] >= 1):
        return False
    he, mpc = ppml.get("he"), ppml.get("mpc")
    if not (he and he["max_rel_error"] < 1e-6 and he["same_classes"] and mpc and mpc["equal"]):
        return False
    if not budgeted:
        return ppml["dp"] is None
    dp = ppml["dp"]
    refusals_clean = all(r["ledger_unchanged"] and not r["data_loaded"] for r in dp["refused"])
    return bool(dp["spends"]) and audited_spends == len(dp["spends"]) and bool(dp["refused"]) and refusals_clean


def _ppml_summary(ppml: dict[str, Any]) -> str:
    fl = ppml["fl"]
    if fl is None:
        return f"privacy-preserving job NOT run: {ppml['skipped']}"
    lines = [
        f"federated training: {fl['clients']} parties, {fl['rounds']} rounds, SecAgg+ {fl['secagg']} "
        f"({fl['sec_agg']['num_shares']} shares, threshold {fl['sec_agg']['reconstruction_threshold']}); released model: "
        + (f"DP-FedAvg epsilon {fl['released']['epsilon']} delta {fl['released']['delta']} -> {fl['released']['output']}"
           if fl["released"]["dp"] else "not DP (no ccp:collaboration.federated.dp)")
        + (f", DP standardizer epsilon {fl['released']['standardizer_epsilon']}" if "standardizer_epsilon" in fl["released"]
           else ", raw features (no DP standardizer)")
        + f"; AUROC {fl['auroc_holdout']:.3f} on the recipient's held-out rows (no party's)"
    ]
    dp = ppml["dp"]
    if dp is None:
        lines.append("differential privacy: no ccp:collaboration.privacy budget declared: no DP statistics released")
        return "\n".join(lines)
    releases = ", ".join(f"{r['name']}={r['value']:.2f} (eps {r['epsilon']})" for r in dp["releases"])
    lines.append(f"DP releases: {releases}")
    lines.append(
        f"privacy budget: epsilon {dp['budget']['epsilon']}, delta {dp['budget']['delta']}; spent epsilon "
        f"{dp['spent']['epsilon']} delta {dp['spent']['delta']}; remaining epsilon {dp['remaining']['epsilon']} "
        f"delta {dp['remaining']['delta']}"
    )
    for r in dp["refused"]:
        unchanged = "ledger unchanged" if r["ledger_unchanged"] else "LEDGER CHANGED"
        lines.append(f"refused: {r['job']} -> {r['output']} (epsilon {r['epsilon']}; {unchanged}): {r['reason']}")
    return "\n".join(lines)


def _in_bucket(s3: S3StandIn, recording: Any, party: str, dataset: str, path: Path) -> SealedInput:
    """Upload the sealed file to the party's recorded data bucket; the workload streams it from there."""
    bucket, region = party_bucket(recording, party)
    if not any(b["Name"] == bucket for b in s3.client(region).list_buckets()["Buckets"]):
        s3.create_bucket(bucket, region)  # a party with several datasets shares one bucket
    object_key = f"sealed/{dataset}.sealed"
    with path.open("rb") as source:
        s3.upload(bucket, region, object_key, source)
    path.unlink()  # the bucket now holds the only copy
    return SealedInput(party, dataset, lambda: s3.stream(bucket, region, object_key))


def _audit_evidence(nsm: SimulatedNitro, signer: ed25519.Ed25519PrivateKey) -> audit_log.Evidence:
    """Evidence from the simulated Nitro enclave whose user data commits to the audit key."""
    document = nsm.attest(user_data=audit_log.key_digest(signer.public_key()), at=dt.datetime.now(dt.timezone.utc))
    return audit_log.Evidence("aws-nitro", document)


def _check_audit_evidence(nsm: SimulatedNitro, kind: str, evidence: bytes, key_digest: bytes) -> bool:
    """The genesis evidence verifies (simulation root) and its user data is the audit key's digest."""
    from enclave_runtime.attest import TrustStore, verify

    claims = verify(kind, evidence, store=TrustStore(simulation_roots=[nsm.root]))
    return getattr(claims, "user_data", None) == key_digest


def _open_outputs(written: list[Path], recipients: dict[str, rsa.RSAPrivateKey], collaboration: str) -> bool:
    """Each output opens with its recipient's key and with no other recipient's key."""
    for path in written:
        output, recipient = path.name.split(".")[:2]
        expect = {"collaboration": collaboration, "party": recipient, "dataset": output}
        for name, private in recipients.items():
            opener = RecipientOpener(name, private)
            try:
                with path.open("rb") as source, open_sealed(source, data_key_for=opener.unwrap, expect=expect) as chunks:
                    plaintext = b"".join(chunks)
            except SealError as error:
                if name == recipient or error.check != "key":
                    return False
                continue
            if name != recipient or not json.loads(plaintext):
                return False
    return True


def _table(decisions: list[dict[str, str]]) -> str:
    header = f"{'party':<16} {'cloud':<6} {'case':<20} {'expected':<8} {'decision':<8}   reason"
    rows = [header, "-" * len(header)]
    for d in decisions:
        mark = "✓" if d["decision"] == d["expected"] else "✗"
        reason = d["reason"] if len(d["reason"]) <= 100 else d["reason"][:97] + "..."
        rows.append(f"{d['party']:<16} {d['cloud']:<6} {d['case']:<20} {d['expected']:<8} {d['decision']:<8} {mark} {reason}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m standins.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev", help="stack to run (default: dev)")
    parser.add_argument("--quiet", action="store_true", help="print nothing; read out/demo-STACK.json")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=AMD_SERIAL_ZERO_WARNING)
    try:
        return run(args.stack, quiet=args.quiet)
    except KeyboardInterrupt:
        print("demo interrupted; nothing was judged", file=sys.stderr)
        return 2
    except DemoError as error:
        print(error, file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - one line, never a traceback; exit 2 is "could not judge"
        print(f"demo could not run: {type(error).__name__}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
