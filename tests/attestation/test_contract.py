"""The measurement contract (components/attestation/contract.py, stacks/contract.py): every party's
signature must cover exactly the stack's measurements; tampering with the file is detected."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from components.attestation import contract
from stacks import config
from stacks import contract as cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_KEYS = ROOT / "stacks" / "contracts" / "example-keys"
PARTIES = ["clinic-aws", "clinic-azure", "lab-gcp"]


def prod_settings(edit: Any = None) -> config.StackConfig:
    raw = config.read_stack_file(ROOT / "Pulumi.prod.yaml")
    if edit is not None:
        edit(raw)
    return config.validate(raw)


def repo_with_contract(tmp_path: Path) -> Path:
    """A root holding a copy of the shipped (signed) prod contract."""
    target = contract.contract_path(tmp_path, "prod")
    target.parent.mkdir(parents=True)
    shutil.copy(contract.contract_path(ROOT, "prod"), target)
    return tmp_path


def edit_contract(root: Path, change: Any) -> None:
    path = contract.contract_path(root, "prod")
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def by_party(result: contract.ContractStatus) -> dict[str, contract.PartyStatus]:
    return {p.party: p for p in result.parties}


def test_shipped_prod_contract_is_complete(tmp_path: Path) -> None:
    result = cli.status(prod_settings(), repo_with_contract(tmp_path), "prod")
    assert result.complete and result.problems == []
    assert [(p.party, p.signed, p.valid) for p in result.parties] == [(name, True, True) for name in PARTIES]
    assert result.digest == prod_settings().collaboration.measurements.digest()
    record = result.record()
    assert {"version", "digest", "parties"} <= set(record)
    assert set(record["parties"][0]) >= {"party", "signed", "valid"}


def test_no_contract_file_means_nobody_signed(tmp_path: Path) -> None:
    result = cli.status(prod_settings(), tmp_path, "prod")
    assert not result.complete
    assert [(p.signed, p.valid) for p in result.parties] == [(False, False)] * 3
    assert "no contract file" in result.problems[0]


def test_missing_party_signature_names_the_party(tmp_path: Path) -> None:
    root = repo_with_contract(tmp_path)
    edit_contract(root, lambda d: d.update(signatures=[s for s in d["signatures"] if s["party"] != "clinic-azure"]))
    parties = by_party(cli.status(prod_settings(), root, "prod"))
    assert (parties["clinic-azure"].signed, parties["clinic-azure"].valid) == (False, False)
    assert parties["clinic-azure"].reason == "has not signed"
    assert parties["clinic-aws"].valid and parties["lab-gcp"].valid


def _set(who: str, **fields: str) -> Any:
    def change(document: dict[str, Any]) -> None:
        for entry in document["signatures"]:
            if entry["party"] == who:
                entry.update(fields)
    return change


def test_tampered_signature_is_invalid(tmp_path: Path) -> None:
    root = repo_with_contract(tmp_path)
    document = json.loads(contract.contract_path(root, "prod").read_text())
    other = next(s["signature"] for s in document["signatures"] if s["party"] == "lab-gcp")
    edit_contract(root, _set("clinic-aws", signature=other))
    parties = by_party(cli.status(prod_settings(), root, "prod"))
    assert (parties["clinic-aws"].signed, parties["clinic-aws"].valid) == (True, False)
    assert "does not verify" in parties["clinic-aws"].reason
    edit_contract(root, _set("clinic-aws", signature="!!not base64!!"))
    assert not by_party(cli.status(prod_settings(), root, "prod"))["clinic-aws"].valid


def test_tampered_party_field_is_detected(tmp_path: Path) -> None:
    root = repo_with_contract(tmp_path)
    edit_contract(root, _set("clinic-aws", party="mallory-corp"))
    result = cli.status(prod_settings(), root, "prod")
    assert not result.complete
    assert by_party(result)["clinic-aws"].reason == "has not signed"
    assert any("'mallory-corp', which is not a party" in p for p in result.problems)
    # Relabelling one party's signature as another's: signed with a key that is not the declared one.
    root2 = repo_with_contract(tmp_path / "two")
    edit_contract(root2, lambda d: [s.update(party={"clinic-aws": "lab-gcp", "lab-gcp": "clinic-aws"}.get(s["party"], s["party"])) for s in d["signatures"]])
    parties = by_party(cli.status(prod_settings(), root2, "prod"))
    assert not parties["clinic-aws"].valid and not parties["lab-gcp"].valid
    assert "not its declared measurementSigningKey" in parties["lab-gcp"].reason


def test_tampered_digest_or_file_measurements_are_detected(tmp_path: Path) -> None:
    root = repo_with_contract(tmp_path)
    edit_contract(root, lambda d: d.update(digest="sha256:" + "0" * 64))
    result = cli.status(prod_settings(), root, "prod")
    assert not result.complete
    assert any("not the digest of the file's own measurements" in p for p in result.problems)
    root2 = repo_with_contract(tmp_path / "two")
    edit_contract(root2, lambda d: d["measurements"]["nitro"].update(pcr0="1" * 96))
    result = cli.status(prod_settings(), root2, "prod")
    assert not result.complete
    assert any("edited by hand" in p for p in result.problems)


def _change_pcr0(raw: dict[str, Any]) -> None:
    raw["collaboration"]["measurements"]["nitro"]["pcr0"] = "1" * 96


@pytest.mark.parametrize(
    "edit",
    [
        _change_pcr0,
        lambda raw: raw["collaboration"]["measurements"]["nitro"].update(pin=["pcr0"]),
        lambda raw: raw["collaboration"]["measurements"].update(version="2026.11.1"),
        lambda raw: raw["collaboration"]["measurements"]["confidentialSpace"]["imageDigests"].append("sha256:" + "2" * 64),
    ],
    ids=["pcr0", "pin", "version", "image-digest"],
)
def test_measurement_change_after_signing_makes_every_signature_stale(tmp_path: Path, edit: Any) -> None:
    result = cli.status(prod_settings(edit), repo_with_contract(tmp_path), "prod")
    assert not result.complete
    for party in result.parties:
        assert (party.signed, party.valid) == (True, False)
        assert party.reason.startswith("stale signature: signed version 2026.11.0")


def test_party_without_key_or_with_unreadable_key_is_invalid(tmp_path: Path) -> None:
    root = repo_with_contract(tmp_path)

    def drop_key(raw: dict[str, Any]) -> None:
        del raw["collaboration"]["parties"][1]["measurementSigningKey"]
        raw["collaboration"]["parties"][2]["measurementSigningKey"] = "keys/lab-gcp.pem"

    parties = by_party(cli.status(prod_settings(drop_key), root, "prod"))
    assert "declares no measurementSigningKey" in parties["clinic-azure"].reason
    assert "'keys/lab-gcp.pem' cannot be read" in parties["lab-gcp"].reason
    assert parties["clinic-aws"].valid


def test_key_given_as_a_repository_path(tmp_path: Path) -> None:
    root = repo_with_contract(tmp_path)
    (root / "keys").mkdir()
    shutil.copy(EXAMPLE_KEYS / "lab-gcp.pub.pem", root / "keys" / "lab-gcp.pem")
    settings = prod_settings(lambda raw: raw["collaboration"]["parties"][2].update(measurementSigningKey="keys/lab-gcp.pem"))
    assert by_party(cli.status(settings, root, "prod"))["lab-gcp"].valid


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("../outside.pem", "neither a PEM public key nor a repository-relative path"),
        ("/etc/key.pem", "neither a PEM public key nor a repository-relative path"),
        (contract.public_key_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)), "neither Ed25519 nor ECDSA P-256"),
        (contract.public_key_pem(ec.generate_private_key(ec.SECP384R1())), "neither Ed25519 nor ECDSA P-256"),
        ("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n", "not a PEM public key"),
    ],
    ids=["dotdot", "absolute", "rsa", "p384", "garbage"],
)
def test_bad_key_declarations_are_config_errors(value: str, message: str) -> None:
    with pytest.raises(config.ConfigError) as error:
        prod_settings(lambda raw: raw["collaboration"]["parties"][0].update(measurementSigningKey=value))
    (problem,) = error.value.problems
    assert problem.startswith("ccp:collaboration.parties[0].measurementSigningKey: ") and message in problem


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa-p256"])
def test_sign_and_verify_with_either_algorithm(kind: str) -> None:
    key = ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else ec.generate_private_key(ec.SECP256R1())
    measurements = prod_settings().collaboration.measurements
    document = contract.add_signature(contract.new_document("prod-study", measurements), "clinic-aws", key)
    (entry,) = document["signatures"]
    assert entry["keyId"] == contract.key_id(key.public_key())
    message = contract.statement("prod-study", "clinic-aws", measurements.version, measurements.digest())
    assert contract.verifies(key.public_key(), message, entry["signature"])
    # The statement binds the collaboration and the party: no replay elsewhere.
    assert not contract.verifies(key.public_key(), contract.statement("other", "clinic-aws", measurements.version, measurements.digest()), entry["signature"])
    assert not contract.verifies(key.public_key(), contract.statement("prod-study", "lab-gcp", measurements.version, measurements.digest()), entry["signature"])


# --- the CLI ---------------------------------------------------------------------------------------


def stack_copy(tmp_path: Path, edit: Any = None) -> Path:
    text = (ROOT / "Pulumi.prod.yaml").read_text()
    if edit is not None:
        data = yaml.safe_load(text)
        edit(data["config"]["ccp:collaboration"])
        text = yaml.safe_dump(data)
    (tmp_path / "Pulumi.prod.yaml").write_text(text)
    return tmp_path


def test_cli_sign_verify_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = stack_copy(tmp_path)
    assert cli.main(["verify", "--stack", "prod", "--program", str(root)]) == 1
    assert capsys.readouterr().out.count("NOT SIGNED (has not signed)") == 3
    for i, party in enumerate(PARTIES):
        assert cli.main(["sign", "--stack", "prod", "--party", party, "--key", str(EXAMPLE_KEYS / f"{party}.pem"), "--program", str(root)]) == 0
        code = cli.main(["verify", "--stack", "prod", "--program", str(root)])
        assert code == (0 if i == len(PARTIES) - 1 else 1)
    out = capsys.readouterr().out
    assert "complete: every party signed exactly these measurements" in out
    written = json.loads(contract.contract_path(root, "prod").read_text())
    # The CLI writes what the repository ships (the signatures are deterministic for Ed25519).
    assert written == json.loads(contract.contract_path(ROOT, "prod").read_text())
    assert written["digest"] == contract.digest_of(written["measurements"])
    assert [s["party"] for s in written["signatures"]] == PARTIES


def test_cli_resigning_after_a_change_drops_stale_signatures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = stack_copy(tmp_path)
    shutil.copytree(ROOT / "stacks" / "contracts", root / "stacks" / "contracts")
    stack_copy(tmp_path, lambda c: c["measurements"]["nitro"].update(pcr0="1" * 96))
    assert cli.main(["verify", "--stack", "prod", "--program", str(root)]) == 1
    assert capsys.readouterr().out.count("INVALID (stale signature") == 3
    assert cli.main(["sign", "--stack", "prod", "--party", "lab-gcp", "--key", str(EXAMPLE_KEYS / "lab-gcp.pem"), "--program", str(root)]) == 0
    assert "dropped the signatures of clinic-aws, clinic-azure, lab-gcp" in capsys.readouterr().out
    assert cli.main(["verify", "--stack", "prod", "--program", str(root)]) == 1
    out = capsys.readouterr().out
    assert "lab-gcp: valid" in out and "clinic-aws: NOT SIGNED" in out and "clinic-azure: NOT SIGNED" in out


def test_cli_refuses_a_key_that_is_not_the_partys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = stack_copy(tmp_path)
    code = cli.main(["sign", "--stack", "prod", "--party", "clinic-aws", "--key", str(EXAMPLE_KEYS / "lab-gcp.pem"), "--program", str(root)])
    assert code == 2
    assert "is not party clinic-aws's declared measurementSigningKey" in capsys.readouterr().err
    assert not contract.contract_path(root, "prod").exists()
    assert cli.main(["sign", "--stack", "prod", "--party", "nobody", "--key", str(EXAMPLE_KEYS / "lab-gcp.pem"), "--program", str(root)]) == 2
    assert "'nobody' is not a party of prod-study" in capsys.readouterr().err


def test_cli_keygen_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "k.pem"
    assert cli.main(["keygen", "--out", str(out)]) == 0
    public = capsys.readouterr().out
    assert contract.key_id(contract.load_public_key(public)) == contract.key_id(contract.load_private_key(out.read_bytes()).public_key())
    assert cli.main(["keygen", "--out", str(out)]) == 2


@pytest.mark.parametrize("stack", ["dev", "prod", "banks", "hospitals"])
def test_every_shipped_example_is_signed(stack: str) -> None:
    settings = config.validate(config.read_stack_file(ROOT / f"Pulumi.{stack}.yaml"))
    result = cli.status(settings, ROOT, stack)
    assert result.complete, cli.verify_lines(result)
