"""`make demo [STACK=dev]`: a collaboration end to end on this machine, no cloud, no credentials.

1. the review of the stack (its recorded policies are what the stand-ins enforce);
2. the stand-ins of each party's key service start (AWS KMS, Azure Attestation + Key Vault, GCP STS +
   Cloud KMS), speaking the real APIs to the official SDKs;
3. each party seals a sample dataset on "its own machine" under its party key (the owner may only wrap)
   and an AWS party uploads it to its recorded data bucket (moto's S3 server), whence the workload streams it;
4. the workload runs in the simulated TEE with the approved measurements: each party key is released
   by its own cloud, the datasets are unsealed inside, a joint result is computed and sealed to the
   declared recipients only;
5. the same release is tried as a debug build, an unapproved image, another collaboration's workload
   and an unattested caller: each must be refused by the stack's own policy, with the service's reason;
6. the audit log the workload wrote is verified.
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
from enclave_runtime.workload import SealedInput, joint_result, seal_outputs, unseal_and_summarize
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
    progress = Progress(7, quiet)
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
            for key in keys:
                party = next(p for p in collaboration.parties if p.name == key.party)
                for dataset in party.datasets:
                    path = work / f"{key.party}.{dataset.name}.sealed"
                    with path.open("wb") as sink:
                        header = seal(
                            io.BytesIO(sample_dataset(key.party, dataset.name)), sink, collaboration=collaboration.name,
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
        with progress.step("the approved workload: release each party key on its own cloud, unseal, compute"):
            partials = []
            for key in keys:
                for name, item in sealed.items():
                    if item.party != key.party:
                        continue
                    # The session caches the released key: unsealing makes no second key-service call.
                    session = KeySession({key.cloud: services[key.cloud].releaser(key, "approved")})
                    row, data_key = _try_release(session.data_key, key, "approved", wrapped_keys[name], audit)
                    decisions.append(row)
                    if data_key is not None:
                        partials.append(
                            unseal_and_summarize(item, collaboration=collaboration.name, data_key_for=session.data_key, audit=audit)
                        )
                    session.close()
            result = joint_result(partials)

        recipients = {p.name: rsa.generate_private_key(public_exponent=65537, key_size=3072) for p in collaboration.parties}
        with progress.step("seal the joint result to the declared recipients only"):
            outputs = {o.name: list(o.recipients) for o in collaboration.outputs}
            written = seal_outputs(
                result, collaboration=collaboration.name, outputs=outputs,
                recipients={n: RecipientWrapper(n, k.public_key()) for n, k in recipients.items()},
                out_dir=work, audit=audit,
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
    ok = all(d["decision"] == d["expected"] for d in decisions) and verified and opened
    record = {
        "stack": stack,
        "decisions": decisions,
        "result": result,
        "outputs": [p.name for p in written],
        "audit": {"entries": report.entries, "verified": verified},
    }
    (out / f"demo-{stack}.json").write_text(json.dumps(record, indent=2) + "\n")
    if not quiet:
        print(_table(decisions))
        print(f"joint result: {json.dumps(result)}")
        print(f"outputs: {', '.join(p.name for p in written)} (each opens only with its recipient's key: {opened})")
        print(f"audit log: {report.entries} entries, {'verified' if verified else 'NOT verified: ' + report.message}")
        print(f"decisions: {out / f'demo-{stack}.json'}")
        print("PASS: every decision matches the stack's policies" if ok else "FAIL: see the rows marked ✗")
    return 0 if ok else 1


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
