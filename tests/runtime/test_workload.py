"""The demo workload's pieces: streaming lines, the partial aggregate, outputs only to declared recipients."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from enclave_runtime import audit as audit_log
from enclave_runtime.keyrelease import KeyReleaseError
from enclave_runtime.recipients import RecipientOpener, RecipientWrapper
from enclave_runtime.seal import SealError, open_sealed
from enclave_runtime.workload import Partial, WorkloadError, joint_result, lines, seal_outputs, summarize


def test_lines_across_chunk_boundaries() -> None:
    assert list(lines([b"id,va", b"lue\na,1", b"\nb,2\n", b"c,3"])) == ["id,value", "a,1", "b,2", "c,3"]


def test_summarize_counts_and_sums() -> None:
    assert summarize("p", "d", ["id,value", "a,1.5", "b,2.5"]) == Partial("p", "d", 2, 4.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [(["id,amount", "a,1"], "no `value` column"), (["id,value", "a,1", "b,x"], "line 3: `value` 'x' is not a number")],
)
def test_summarize_refuses_malformed_datasets(text: list[str], message: str) -> None:
    with pytest.raises(WorkloadError, match=message):
        summarize("p", "d", text)


def test_joint_result_combines_partials_only() -> None:
    result = joint_result([Partial("b", "x", 2, 10.0), Partial("a", "y", 3, 5.0)])
    assert result == {"parties": ["a", "b"], "rows": 5, "mean_value": 3.0}


def _audit(tmp_path: Path) -> audit_log.AuditLog:
    signer = ed25519.Ed25519PrivateKey.generate()
    return audit_log.AuditLog(tmp_path / "audit.jsonl", signer, audit_log.Evidence("aws-nitro", b"\x01"))


def test_outputs_open_only_for_their_recipient(tmp_path: Path) -> None:
    keys = {name: rsa.generate_private_key(public_exponent=65537, key_size=2048) for name in ("alice", "bob", "eve")}
    with _audit(tmp_path) as audit:
        written = seal_outputs(
            {"rows": 3}, collaboration="c", outputs={"model": ["alice", "bob"]},
            recipients={n: RecipientWrapper(n, k.public_key()) for n, k in keys.items()}, out_dir=tmp_path, audit=audit,
        )
    assert [p.name for p in written] == ["model.alice.sealed", "model.bob.sealed"]  # nothing for eve
    expect = {"collaboration": "c", "party": "alice", "dataset": "model"}
    with written[0].open("rb") as source, open_sealed(source, data_key_for=RecipientOpener("alice", keys["alice"]).unwrap, expect=expect) as chunks:
        assert json.loads(b"".join(chunks)) == {"rows": 3}
    with written[0].open("rb") as source, pytest.raises(SealError, match="not for this recipient's key 'recipient:eve:"):
        open_sealed(source, data_key_for=RecipientOpener("eve", keys["eve"]).unwrap, expect=expect)
    report = audit_log.verify(tmp_path / "audit.jsonl")
    assert (report.status, report.events) == ("valid", {"genesis": 1, "output": 2})


def test_a_declared_recipient_without_a_key_is_an_error(tmp_path: Path) -> None:
    with _audit(tmp_path) as audit, pytest.raises(WorkloadError, match="recipient 'bob' registered no public key"):
        seal_outputs({}, collaboration="c", outputs={"model": ["bob"]}, recipients={}, out_dir=tmp_path, audit=audit)
    assert not list(tmp_path.glob("*.sealed"))


def test_recipient_opener_refuses_another_algorithm() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrapped = RecipientWrapper("alice", key.public_key()).wrap(b"k" * 32)
    assert RecipientOpener("alice", key).unwrap(wrapped) == b"k" * 32
    from dataclasses import replace

    with pytest.raises(KeyReleaseError, match="RSA1_5"):
        RecipientOpener("alice", key).unwrap(replace(wrapped, algorithm="RSA1_5"))


def test_privacy_spends_are_mirrored_into_the_signed_audit_log(tmp_path: Path) -> None:
    from enclave_runtime.workload import record_privacy_spends

    log = audit_log.AuditLog(tmp_path / "audit.jsonl", ed25519.Ed25519PrivateKey.generate(), audit_log.Evidence("none", b"x"))
    spend = {"job": "cohort", "output": "metrics", "epsilon": "1.5", "delta": "0", "head": "ab" * 32, "queries": ["n"]}
    assert record_privacy_spends(log, "study", [spend]) == [1]
    log.close()
    report = audit_log.verify(tmp_path / "audit.jsonl")
    assert report.status == "valid" and report.events == {"genesis": 1, "privacy-spend": 1}
    entry = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[1])
    assert entry["data"] == {"collaboration": "study", "job": "cohort", "output": "metrics", "epsilon": "1.5",
                             "delta": "0", "head": "ab" * 32}
