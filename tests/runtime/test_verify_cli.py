"""`python -m enclave_runtime verify`: the contract (one JSON object, exit 0/1/2, never a traceback), and
verify-then-validate end to end on real evidence and on the simulated TEE.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.serialization import Encoding

from enclave_runtime.cli import main
from enclave_runtime.simulate.nitro import SimulatedNitro
from enclave_runtime.simulate.snp import SimulatedSnp
from tests.runtime.vectors import path

REPO = Path(__file__).resolve().parents[2]
PROD = REPO / "Pulumi.prod.yaml"


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, dict[str, Any]]:
    try:
        code = main(["verify", *map(str, args), "--json"])
    except SystemExit as exc:  # argparse usage errors exit from inside parse_args
        code = int(exc.code or 0)
    return code, json.loads(capsys.readouterr().out)


def v(name: str) -> Path:
    return path(name)


# Each genuine debug sample: verified (exit 0 without a policy), refused as debug by the prod policy.
DEBUG_SAMPLES = [
    ("aws-nitro", "aws-nitro/nitro_evervault_ga_debugmode_20230918.b64", [], "2023-09-18T15:03:30Z"),
    ("amd-sev-snp", "amd-sev-snp/snp_gsg_milan_v2_debugpolicy_report.bin",
     ["amd-sev-snp/snp_gsg_milan_vcek.der", "amd-sev-snp/ask_ark_milan.pem"], "2024-01-01T00:00:00Z"),
    ("intel-tdx", "intel-tdx/tdx_trustee_v4_debug_td_quote.dat", [], "2023-02-08T08:02:55Z"),
    ("intel-sgx", "intel-sgx/sgx_trustee_occlum_v3_debug_quote.dat", [], "2023-04-27T15:35:16Z"),
]


@pytest.mark.parametrize(("kind", "evidence", "with_", "at"), DEBUG_SAMPLES, ids=[s[0] for s in DEBUG_SAMPLES])
def test_real_debug_evidence_verifies_and_fails_validation_under_prod(capsys, kind, evidence, with_, at) -> None:
    extra = [a for w in with_ for a in ("--with", v(w))]
    code, out = run(capsys, "--kind", kind, "--evidence", v(evidence), *extra, "--at", at)
    assert (code, out["verified"], out["error"], out["claims"]["debug"]) == (0, True, None, True)
    assert out["validation"] is None
    code, out = run(capsys, "--kind", kind, "--evidence", v(evidence), *extra, "--at", at, "--policy", PROD)
    assert code == 1 and out["verified"] is True
    assert out["validation"]["allowed"] is False
    assert "debug" in [f["check"] for f in out["validation"]["failed"]]


def test_genuine_production_evidence_fails_only_on_the_measurement_it_does_not_match(capsys) -> None:
    code, out = run(
        capsys, "--kind", "aws-nitro", "--evidence", v("aws-nitro/nitro_evervault_beta_20221013.cbor"),
        "--at", "2022-10-13T08:58:02.136Z", "--policy", PROD,
    )
    assert code == 1
    assert [f["check"] for f in out["validation"]["failed"]] == ["measurement", "measurement"]  # pcr0, pcr8


def test_a_policy_pinning_the_genuine_values_allows_it(capsys, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({
        "environment": "prod",
        "measurements": {"version": "1", "sevSnp": {
            "launchMeasurement": "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c"}},
        "minSnpTcb": {"snpSpl": 8, "ucodeSpl": 115},
        "binding": {"reportData": "ec6c52d7533cc2c4f45be7849cf112ab82b2009fe7bd43e71ed08c14400ad7e2"},
    }))
    args = ["--kind", "amd-sev-snp", "--evidence", v("amd-sev-snp/snp_trustee_milan_v2_report.bin"),
            "--with", v("amd-sev-snp/snp_trustee_milan_vcek.der"), "--with", v("amd-sev-snp/ask_ark_milan.pem"),
            "--at", "2024-01-01T00:00:00Z", "--policy", policy]
    code, out = run(capsys, *args)
    assert (code, out["validation"]) == (0, {"allowed": True, "failed": []})
    # --report-data overrides the policy's binding: another value is a binding failure, named.
    code, out = run(capsys, *args, "--report-data", "00" * 32)
    assert code == 1 and [f["check"] for f in out["validation"]["failed"]] == ["binding"]


def test_simulated_evidence_needs_its_root_and_a_dev_policy(capsys, tmp_path: Path) -> None:
    at = dt.datetime(2026, 11, 30, 12, tzinfo=dt.timezone.utc)
    sim = SimulatedNitro()
    pcr0 = bytes.fromhex("c28c5a1e280a5d74d20e3aaac3f9d9323b3c628cdd4c81c50ea060868195fac82327db2f2eceef623722102def266bfd")
    pcr8 = bytes.fromhex("b5758ca254c53023d8bcf8f68c30f45a785027d4087fa7788e0e1c51d407ce8be1d93a88594dc1bff5fbad23a957e5ae")
    evidence = tmp_path / "doc.cbor"
    evidence.write_bytes(sim.attest(pcrs={0: pcr0, 8: pcr8}, nonce=b"\x01\x02", at=at))
    root = tmp_path / "sim-root.pem"
    root.write_bytes(sim.authorities[0].pem())
    base = ["--kind", "aws-nitro", "--evidence", evidence, "--at", "2026-11-30T12:00:00Z"]
    code, out = run(capsys, *base)
    assert (code, out["error"]["check"]) == (1, "root")
    code, out = run(capsys, *base, "--trust-simulation-root", root, "--policy", PROD)
    assert code == 1 and out["claims"]["anchor"] == "simulation"
    assert [f["check"] for f in out["validation"]["failed"]] == ["simulation"]  # the pins match: only that
    dev = tmp_path / "dev.yaml"
    dev.write_text(yaml.safe_dump({"environment": "dev", "measurements": {"version": "1", "nitro": {
        "pcr0": pcr0.hex(), "pcr8": pcr8.hex(), "pin": ["pcr0", "pcr8"]}}}))
    code, out = run(capsys, *base, "--trust-simulation-root", root, "--policy", dev, "--nonce", "0102")
    assert (code, out["validation"]["allowed"]) == (0, True)


def test_simulated_snp_report_through_the_cli(capsys, tmp_path: Path) -> None:
    sim = SimulatedSnp("genoa")
    measurement = bytes(range(48))
    (tmp_path / "report.bin").write_bytes(sim.report(measurement=measurement, report_data=b"\xaa" * 64))
    (tmp_path / "chain.pem").write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in sim.certificates))
    (tmp_path / "root.pem").write_bytes(sim.root.public_bytes(Encoding.PEM))
    code, out = run(
        capsys, "--kind", "amd-sev-snp", "--evidence", tmp_path / "report.bin", "--with", tmp_path / "chain.pem",
        "--trust-simulation-root", tmp_path / "root.pem",
    )
    assert code == 0
    assert (out["claims"]["measurement"], out["claims"]["product"], out["claims"]["anchor"]) == (
        measurement.hex(), "genoa", "simulation")


@pytest.mark.parametrize(
    ("args", "code", "check"),
    [
        (["--kind", "aws-nitro", "--evidence", "/nonexistent"], 2, "input"),
        (["--kind", "nope", "--evidence", "x"], 2, "usage"),
        (["--kind", "aws-nitro"], 2, "usage"),
        (["--kind", "aws-nitro", "--evidence", "EVIDENCE", "--at", "yesterday"], 2, "usage"),
        (["--kind", "aws-nitro", "--evidence", "EVIDENCE", "--at", "2022-10-13T08:58:02"], 2, "usage"),
        (["--kind", "aws-nitro", "--evidence", "EVIDENCE", "--with", "/nonexistent.pem"], 2, "input"),
        (["--kind", "aws-nitro", "--evidence", "EVIDENCE", "--policy", "/nonexistent.yaml"], 2, "policy"),
        (["--kind", "aws-nitro", "--evidence", "EVIDENCE", "--nonce", "00"], 2, "policy"),
        (["--kind", "aws-nitro", "--evidence", "EVIDENCE", "--at", "2030-01-01T00:00:00Z"], 1, "validity"),
        (["--kind", "amd-sev-snp", "--evidence", "EVIDENCE"], 1, "structure"),
    ],
)
def test_usage_and_input_errors_are_one_json_object_with_the_right_exit(capsys, args, code, check) -> None:
    args = [str(v("aws-nitro/nitro_evervault_beta_20221013.cbor")) if a == "EVIDENCE" else a for a in args]
    got, out = run(capsys, *args)
    assert (got, out["verified"], out["error"]["check"]) == (code, False, check)
    assert out["error"]["message"]


def test_the_module_entry_point_never_prints_a_traceback(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\xff" * 100)
    for kind in ("aws-nitro", "amd-sev-snp", "azure-vtpm", "intel-tdx", "intel-sgx", "maa-token", "cs-token"):
        proc = subprocess.run(
            [sys.executable, "-m", "enclave_runtime", "verify", "--kind", kind, "--evidence", str(garbage)],
            cwd=REPO, capture_output=True, text=True,
        )
        assert proc.returncode in (1, 2), (kind, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stdout + proc.stderr
        assert proc.stdout.startswith(f"{kind}: NOT VERIFIED ("), proc.stdout


def test_tokens_from_files_verify_and_validate_against_the_policy(capsys, tmp_path: Path) -> None:
    """MAA and Confidential Space tokens signed by the simulated issuer, given as files as a key service
    would receive them: verified against the JWKS and discovery document, validated against measurements."""
    from enclave_runtime.attest.tokens import CONFIDENTIAL_SPACE_ISSUER
    from enclave_runtime.simulate.tokens import CS_AUDIENCE, TokenIssuer

    at = dt.datetime.now(dt.timezone.utc)
    google, azure = TokenIssuer(CONFIDENTIAL_SPACE_ISSUER), TokenIssuer()
    for name, issuer in (("google", google), ("azure", azure)):
        (tmp_path / f"{name}-jwks.json").write_text(json.dumps(issuer.jwks()))
        (tmp_path / f"{name}-openid.json").write_text(json.dumps(issuer.discovery()))
    digest = "sha256:" + "bc" * 32
    launch = "12" * 48
    policy = tmp_path / "policy.yaml"

    def write_policy(**token: str) -> None:
        policy.write_text(yaml.safe_dump({
            "environment": "prod", "token": token,
            "measurements": {"version": "1", "sevSnp": {"launchMeasurement": launch},
                             "confidentialSpace": {"imageDigests": [digest]}},
        }))

    def judge(kind: str, token: str) -> tuple[int, dict[str, Any]]:
        (tmp_path / "token.jwt").write_text(token)
        cloud = "google" if kind == "cs-token" else "azure"
        return run(capsys, "--kind", kind, "--evidence", tmp_path / "token.jwt", "--with", tmp_path / f"{cloud}-jwks.json",
                   "--with", tmp_path / f"{cloud}-openid.json", "--policy", policy, "--at", at.isoformat())

    write_policy(audience=CS_AUDIENCE)
    code, out = judge("cs-token", google.confidential_space(image_digest=digest, at=at))
    assert (code, out["validation"]) == (0, {"allowed": True, "failed": []}), out
    code, out = judge("cs-token", google.confidential_space(image_digest="sha256:" + "00" * 32, at=at))
    assert [f["check"] for f in out["validation"]["failed"]] == ["measurement"]
    code, out = judge("cs-token", google.confidential_space(image_digest=digest, debug=True, at=at))
    assert code == 1 and "debug" in [f["check"] for f in out["validation"]["failed"]]

    maa = azure.maa_snp(tee={"x-ms-sevsnpvm-launchmeasurement": launch}, at=at)
    write_policy(issuer=azure.issuer)
    code, out = judge("maa-token", maa)
    assert out["verified"] and out["claims"]["tee_type"] == "sevsnpvm", out
    assert (code, out["validation"]["failed"]) == (0, [])
    write_policy(issuer="https://another.attest.azure.net")
    code, out = judge("maa-token", maa)
    assert [f["check"] for f in out["validation"]["failed"]] == ["issuer"]
    write_policy(issuer=azure.issuer)
    code, out = judge("maa-token", azure.maa_snp(at=at))  # another launch measurement
    assert [f["check"] for f in out["validation"]["failed"]][-1:] == ["measurement"]

