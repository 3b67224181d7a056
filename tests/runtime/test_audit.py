"""The audit log: every edit, deletion, insertion and reordering is found and its line named; acknowledged
entries survive a kill; the genesis binds the signing key to the attestation evidence."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from enclave_runtime import audit
from enclave_runtime.audit import GENESIS_PREV, AuditError, AuditLog, Evidence, key_digest, verify
from enclave_runtime.cli import main

REPO = Path(__file__).resolve().parents[2]


def _fake_evidence(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> Evidence:
    """Stand-in evidence whose 'report data' is the key digest followed by 32 zero bytes (as SNP/TDX carry it)."""
    return Evidence("fake-tee", b"FAKE-REPORT" + key_digest(key.public_key()) + bytes(32))


def _check_fake(kind: str, evidence: bytes, digest: bytes) -> bool:
    if kind != "fake-tee" or not evidence.startswith(b"FAKE-REPORT"):
        raise ValueError(f"not fake-tee evidence: {kind}")
    return evidence[11:43] == digest


def _write_log(path: Path, key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | None = None) -> list[bytes]:
    key = key or ed25519.Ed25519PrivateKey.generate()
    with AuditLog(path, key, _fake_evidence(key)) as log:
        log.verification("amd-sev-snp", True)
        log.key_release("aws", "arn:aws:kms:eu-west-1:111122223333:key/a", True)
        log.key_release("gcp", "projects/p/locations/l/keyRings/r/cryptoKeys/b", False, "PERMISSION_DENIED: policy")
        log.unseal("oncology", "hospital-a", "admissions", 1234, "ab" * 32)
        log.output("result.csv", 99, "cd" * 32)
    return path.read_bytes().splitlines(keepends=True)


def _signed(key: ed25519.Ed25519PrivateKey, seq: int, event: str, data: dict, prev: str) -> bytes:
    entry = {"seq": seq, "time": "2026-01-01T00:00:00.000000Z", "event": event, "data": data, "prev": prev}
    entry["sig"] = base64.b64encode(key.sign(audit._canonical(entry))).decode()
    return audit._canonical(entry) + b"\n"


def _head(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


@pytest.fixture
def log(tmp_path: Path) -> tuple[Path, list[bytes]]:
    path = tmp_path / "audit.jsonl"
    return path, _write_log(path)


def _rewrite(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


# --- a valid log ------------------------------------------------------------------------------------

def test_a_written_log_verifies_with_every_entry(log: tuple[Path, list[bytes]]) -> None:
    path, lines = log
    report = verify(path, check_evidence=_check_fake)
    first = json.loads(lines[0])
    assert report.as_dict() == {
        "status": "valid", "valid": True, "entries": 6, "line": None, "check": None, "message": "",
        "head": _head(lines[-1]), "keyDigest": first["data"]["keyDigest"], "evidenceKind": "fake-tee",
        "evidenceChecked": True,
        "events": {"genesis": 1, "verification": 1, "key-release": 2, "unseal": 1, "output": 1},
    }
    assert [json.loads(line)["seq"] for line in lines] == [0, 1, 2, 3, 4, 5]
    assert first["prev"] == GENESIS_PREV
    assert all(json.loads(b)["prev"] == _head(a) for a, b in zip(lines, lines[1:]))
    assert json.loads(lines[3])["data"] == {
        "cloud": "gcp", "keyId": "projects/p/locations/l/keyRings/r/cryptoKeys/b", "granted": False,
        "reason": "PERMISSION_DENIED: policy",
    }


def test_an_ecdsa_p256_log_verifies(tmp_path: Path) -> None:
    lines = _write_log(tmp_path / "a.jsonl", ec.generate_private_key(ec.SECP256R1()))
    assert json.loads(lines[0])["data"]["algorithm"] == "ES256"
    assert verify(tmp_path / "a.jsonl", check_evidence=_check_fake).status == "valid"


def test_the_log_refuses_to_extend_an_existing_file_and_unknown_events(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "a.jsonl").write_bytes(b"")
    with pytest.raises(AuditError, match="already exists: a new workload run starts a new log"):
        AuditLog(tmp_path / "a.jsonl", key, _fake_evidence(key))
    with AuditLog(tmp_path / "b.jsonl", key, _fake_evidence(key)) as log:
        with pytest.raises(AuditError, match="event 'unsael' is not one of"):
            log.append("unsael", {})
    with pytest.raises(AuditError, match="not secp384r1"):
        AuditLog(tmp_path / "c.jsonl", ec.generate_private_key(ec.SECP384R1()), _fake_evidence(key))


# --- tampering -------------------------------------------------------------------------------------------

def _tampered(path: Path, line: int, check: str) -> str:
    report = verify(path, check_evidence=_check_fake)
    assert (report.status, report.valid, report.line, report.check, report.entries) == (
        "tampered", False, line, check, line - 1
    )
    return report.message


def test_an_edited_entry_is_named(log: tuple[Path, list[bytes]]) -> None:
    path, lines = log
    entry = json.loads(lines[3])
    entry["data"]["granted"] = True
    lines[3] = audit._canonical(entry) + b"\n"
    assert _tampered(_rewrite(path, lines), 4, "signature") == (
        "line 4: the signature does not verify under the genesis key: the entry was edited or signed by another key"
    )


def test_an_edit_that_only_changes_formatting_is_named(log: tuple[Path, list[bytes]]) -> None:
    path, lines = log
    lines[2] = json.dumps(json.loads(lines[2]), sort_keys=True).encode() + b"\n"
    assert _tampered(_rewrite(path, lines), 3, "format") == (
        "line 3: entry is not in canonical form (sorted keys, no spaces): it was edited"
    )


def test_an_edited_last_entry_is_named(log: tuple[Path, list[bytes]]) -> None:
    path, lines = log
    lines[-1] = lines[-1].replace(b"result.csv", b"resulx.csv")
    _tampered(_rewrite(path, lines), 6, "signature")


@pytest.mark.parametrize("index", [1, 2, 4])
def test_a_deleted_entry_is_named(log: tuple[Path, list[bytes]], index: int) -> None:
    path, lines = log
    del lines[index]
    assert _tampered(_rewrite(path, lines), index + 1, "seq") == (
        f"line {index + 1}: seq is {index + 1}, expected {index}: an entry was deleted, inserted or moved here"
    )


def test_a_deleted_genesis_is_named(log: tuple[Path, list[bytes]]) -> None:
    path, lines = log
    _tampered(_rewrite(path, lines[1:]), 1, "seq")


def test_an_inserted_copy_of_an_entry_is_named(log: tuple[Path, list[bytes]]) -> None:
    path, lines = log
    lines.insert(3, lines[2])
    _tampered(_rewrite(path, lines), 4, "seq")


def test_an_inserted_entry_with_the_right_seq_and_prev_but_no_key_is_named(log: tuple[Path, list[bytes]]) -> None:
    path, lines = log
    forged = _signed(ed25519.Ed25519PrivateKey.generate(), 3, "output", {"name": "x"}, _head(lines[2]))
    _tampered(_rewrite(path, lines[:3] + [forged] + lines[3:]), 4, "signature")


def test_a_renumbered_insertion_breaks_the_chain_after_it(log: tuple[Path, list[bytes]]) -> None:
    path, lines = log
    entry = json.loads(lines[2])
    entry["seq"] = 3
    renumbered = [json.loads(line) for line in lines[3:]]
    for item in renumbered:
        item["seq"] += 1
    rest = [audit._canonical(item) + b"\n" for item in renumbered]
    _tampered(_rewrite(path, lines[:3] + [audit._canonical(entry) + b"\n"] + rest), 4, "prev")


def test_reordered_entries_are_named(log: tuple[Path, list[bytes]]) -> None:
    path, lines = log
    lines[2], lines[3] = lines[3], lines[2]
    assert _tampered(_rewrite(path, lines), 3, "seq") == (
        "line 3: seq is 3, expected 2: an entry was deleted, inserted or moved here"
    )


def test_entries_signed_by_another_key_are_named(log: tuple[Path, list[bytes]]) -> None:
    path, lines = log
    intruder = ed25519.Ed25519PrivateKey.generate()
    forged = _signed(intruder, 1, "verification", {"kind": "amd-sev-snp", "verified": True}, _head(lines[0]))
    assert _tampered(_rewrite(path, [lines[0], forged]), 2, "signature").startswith("line 2: the signature does not")


def test_a_log_rewritten_under_another_key_fails_only_the_evidence_check(tmp_path: Path) -> None:
    """Why check_evidence matters: a whole log re-signed with a key of the attacker's, reusing the evidence."""
    genuine = _write_log(tmp_path / "genuine.jsonl")
    intruder = ed25519.Ed25519PrivateKey.generate()
    evidence = json.loads(genuine[0])["data"]["evidence"]
    with AuditLog(tmp_path / "forged.jsonl", intruder, Evidence("fake-tee", base64.b64decode(evidence["evidence"]))):
        pass
    assert verify(tmp_path / "forged.jsonl").status == "valid"  # chain and signatures alone prove nothing more
    assert verify(tmp_path / "forged.jsonl").evidence_checked is False
    assert _tampered(tmp_path / "forged.jsonl", 1, "evidence") == (
        f"line 1: the genesis evidence does not commit to the log key {key_digest(intruder.public_key()).hex()}"
    )


def test_evidence_the_checker_refuses_is_named_with_its_reason(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    with AuditLog(tmp_path / "a.jsonl", key, Evidence("amd-sev-snp", b"\x01" * 1184)):
        pass
    assert _tampered(tmp_path / "a.jsonl", 1, "evidence") == (
        "line 1: the genesis evidence was not accepted: not fake-tee evidence: amd-sev-snp"
    )


def test_a_genesis_whose_key_digest_was_edited_is_named(log: tuple[Path, list[bytes]]) -> None:
    path, lines = log
    entry = json.loads(lines[0])
    entry["data"]["keyDigest"] = "00" * 32
    lines[0] = audit._canonical(entry) + b"\n"
    assert _tampered(_rewrite(path, lines), 1, "genesis") == "line 1: genesis keyDigest is not the SHA-256 of its publicKey"


def test_a_second_genesis_is_named(tmp_path: Path, log: tuple[Path, list[bytes]]) -> None:
    path, lines = log
    entry = json.loads(lines[0])
    key = ed25519.Ed25519PrivateKey.generate()
    spliced = _signed(key, 6, "genesis", entry["data"], _head(lines[-1]))
    _tampered(_rewrite(path, lines + [spliced]), 7, "genesis")


# --- crashes and durability -----------------------------------------------------------------------------

def test_a_last_line_cut_mid_write_is_reported_as_truncated(log: tuple[Path, list[bytes]]) -> None:
    path, lines = log
    _rewrite(path, lines[:-1] + [lines[-1][:40]])
    report = verify(path, check_evidence=_check_fake)
    assert (report.status, report.valid, report.entries, report.line, report.check) == ("truncated", True, 5, 6, "truncated")
    assert report.message == (
        "line 6 is incomplete (40 bytes, no newline): the writer stopped mid-entry; the 5 entries before it verify"
    )
    assert report.head == _head(lines[-2])


def test_a_cut_line_in_the_middle_is_tampering(log: tuple[Path, list[bytes]]) -> None:
    path, lines = log
    lines[2] = lines[2][:40] + b"\n"
    _tampered(_rewrite(path, lines), 3, "format")


def test_fsync_follows_every_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int]] = []
    real_write, real_fsync = os.write, os.fsync
    monkeypatch.setattr(audit.os, "write", lambda fd, data: calls.append(("write", fd)) or real_write(fd, data))
    monkeypatch.setattr(audit.os, "fsync", lambda fd: calls.append(("fsync", fd)) or real_fsync(fd))
    key = ed25519.Ed25519PrivateKey.generate()
    log = AuditLog(tmp_path / "a.jsonl", key, _fake_evidence(key))
    fd = log._fd
    assert [c for c in calls if c[1] == fd] == [("write", fd), ("fsync", fd)]  # the genesis
    assert [c[0] for c in calls] == ["write", "fsync", "fsync"]  # ... then the directory entry
    for n in range(1, 6):
        calls.clear()
        assert log.verification("amd-sev-snp", True) == n
        assert calls == [("write", fd), ("fsync", fd)]
    log.close()


def test_entries_acknowledged_before_a_sigkill_survive(tmp_path: Path) -> None:
    path, acked = tmp_path / "a.jsonl", 25
    child = textwrap.dedent(f"""
        import sys
        from cryptography.hazmat.primitives.asymmetric import ed25519
        from enclave_runtime.audit import AuditLog, Evidence
        log = AuditLog({str(path)!r}, ed25519.Ed25519PrivateKey.generate(), Evidence("fake-tee", b"x"))
        n = 0
        while True:  # keep writing after the acknowledgement, so the kill lands among appends
            n += 1
            log.output("part-%d" % n, n, "00" * 32)
            if n == {acked}:
                print("acked", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "acked\n"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    report = verify(path)
    assert report.status in ("valid", "truncated")
    assert report.entries >= acked + 1  # the genesis and every acknowledged output
    assert [json.loads(line)["seq"] for line in path.read_bytes().splitlines()[: acked + 1]] == list(range(acked + 1))


def test_unusable_files_raise(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="cannot read audit log"):
        verify(tmp_path / "missing.jsonl")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(AuditError, match="is empty: no genesis entry"):
        verify(tmp_path / "empty")
    (tmp_path / "binary").write_bytes(os.urandom(64).replace(b"\n", b""))
    with pytest.raises(AuditError, match="has no complete genesis line"):
        verify(tmp_path / "binary")
    (tmp_path / "text").write_bytes(b"hello\nworld\n")
    with pytest.raises(AuditError, match="is not an audit log: line 1: not a JSON object"):
        verify(tmp_path / "text")


def test_a_line_replaced_by_something_else_is_tampering(log: tuple[Path, list[bytes]]) -> None:
    path, lines = log
    lines[3] = b'{"note": "removed"}\n'
    assert _tampered(_rewrite(path, lines), 4, "format") == (
        "line 4: entry fields are ['note'], expected ['data', 'event', 'prev', 'seq', 'sig', 'time']"
    )


# --- CLI -----------------------------------------------------------------------------------------------------

def test_cli_valid_log_exits_0(log: tuple[Path, list[bytes]], capsys: pytest.CaptureFixture[str]) -> None:
    path, lines = log
    assert main(["audit", "verify", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["file"], out["status"], out["entries"], out["head"], out["evidenceChecked"]) == (
        str(path), "valid", 6, _head(lines[-1]), False
    )
    assert main(["audit", "verify", str(path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{path}: 6 entries verify, head {_head(lines[-1])}\n")
    assert "not checked against a TEE here" in text


def test_cli_tampered_log_exits_1_naming_the_line(log: tuple[Path, list[bytes]], capsys: pytest.CaptureFixture[str]) -> None:
    path, lines = log
    del lines[4]
    _rewrite(path, lines)
    assert main(["audit", "verify", str(path), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert (out["status"], out["valid"], out["line"], out["check"], out["entries"]) == ("tampered", False, 5, "seq", 4)
    assert main(["audit", "verify", str(path)]) == 1
    assert capsys.readouterr().out == (
        f"{path}: TAMPERED at line 5 (seq): line 5: seq is 5, expected 4: an entry was deleted, inserted or moved here\n"
    )


def test_cli_truncated_log_exits_0_with_a_warning(log: tuple[Path, list[bytes]], capsys: pytest.CaptureFixture[str]) -> None:
    path, lines = log
    _rewrite(path, lines[:-1] + [lines[-1][:10]])
    assert main(["audit", "verify", str(path)]) == 0
    assert "  warning: line 6 is incomplete (10 bytes, no newline)" in capsys.readouterr().out


def test_cli_unusable_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", str(tmp_path / "missing"), "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert (out["status"], out["check"]) == ("unusable", "input")
    assert out["message"].startswith("cannot read audit log")
    with pytest.raises(SystemExit) as exited:
        main(["audit", "verify", "--json"])
    assert exited.value.code == 2
    out = json.loads(capsys.readouterr().out)
    assert (out["status"], out["check"]) == ("unusable", "usage")
