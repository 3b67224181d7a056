"""Validation rules: each has a case that passes and cases that fail with the check named.

The claims here are dicts in the CLI's claim shape, because `validate` reads exactly that shape (from a
`Claims` object or from JSON). The end-to-end cases with real verified evidence are in test_verify_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from enclave_runtime.measurements import ApprovedMeasurements
from enclave_runtime.policy import Policy, PolicyError, validate
from stacks import config

REPO = Path(__file__).resolve().parents[2]
PCR0 = "ab" * 48
PCR8 = "cd" * 48
LAUNCH = "12" * 48
HOST = "34" * 32
MRTD = "56" * 48
MRENCLAVE = "78" * 32
MRSIGNER = "9a" * 32
DIGEST = "sha256:" + "bc" * 32


def policy(environment: str = "prod", **extra: object) -> Policy:
    return Policy.load(
        {
            "environment": environment,
            "measurements": {
                "version": "1",
                "nitro": {"pcr0": PCR0, "pcr8": PCR8, "pin": ["pcr0", "pcr8"]},
                "sevSnp": {"launchMeasurement": LAUNCH, "hostData": HOST},
                "tdx": {"mrtd": MRTD},
                "sgx": {"mrenclave": MRENCLAVE, "mrsigner": MRSIGNER, "productId": 3, "minSvn": 2},
                "confidentialSpace": {"imageDigests": [DIGEST]},
            },
            **extra,
        }
    )


def base(**claims: object) -> dict[str, object]:
    return {"anchor": "vendor", "simulated": False, "debug": False, **claims}


NITRO = base(pcr0=PCR0, pcr1="00" * 48, pcr8=PCR8, nonce="aa", user_data=None, public_key="bb")
SNP = base(measurement=LAUNCH, host_data=HOST, report_data="11" * 32 + "00" * 32,
           reported_tcb={"bl_spl": 3, "tee_spl": 0, "snp_spl": 8, "ucode_spl": 115})
TDX = base(mrtd=MRTD, report_data="22" * 64, tcb_status="UpToDate")
SGX = base(mrenclave=MRENCLAVE, mrsigner=MRSIGNER, isvprodid=3, isvsvn=2, report_data="33" * 64, tcb_status=None)
CS = base(audience="https://kms.example", issuer="https://confidentialcomputing.googleapis.com",
          image_digest=DIGEST, swname="CONFIDENTIAL_SPACE", support_attributes=["LATEST", "STABLE", "USABLE"],
          eat_nonce=["n1"])
MAA_SNP = base(audience="https://kv.example", issuer="https://p.weu.attest.azure.net", tee_type="sevsnpvm",
               launch_measurement=LAUNCH, host_data=HOST, nonce="n2")
MAA_SGX = base(audience="https://kv.example", issuer="https://p.weu.attest.azure.net", tee_type="sgx",
               mrenclave=MRENCLAVE, mrsigner=MRSIGNER, product_id=3, svn=5)
VTPM = base(snp=SNP, nonce="0218")
TOKEN_PINS = {"token": {"audience": None}}


def checks(kind: str, claims: dict[str, object], pol: Policy | None = None) -> list[str]:
    decision = validate(kind, claims, pol or policy())
    assert decision.allowed == (not decision.failed)
    return [f.check for f in decision.failed]


@pytest.mark.parametrize(
    ("kind", "claims", "pins"),
    [
        ("aws-nitro", NITRO, {}),
        ("amd-sev-snp", SNP, {}),
        ("azure-vtpm", VTPM, {}),
        ("intel-tdx", TDX, {}),
        ("intel-sgx", SGX, {}),
        ("cs-token", CS, {"token": {"audience": "https://kms.example"}}),
        ("maa-token", MAA_SNP, {"token": {"issuer": "https://p.weu.attest.azure.net"}}),
        ("maa-token", MAA_SGX, {"token": {"issuer": "https://p.weu.attest.azure.net"}}),
    ],
)
def test_the_approved_workload_is_allowed_and_each_deviation_is_named(kind, claims, pins) -> None:
    assert checks(kind, claims, policy(**pins)) == []
    # Debug and simulated evidence are refused in prod whatever the measurements say.
    assert checks(kind, {**claims, "debug": True}, policy(**pins)) == ["debug"]
    assert checks(kind, {**claims, "simulated": True, "anchor": "simulation"}, policy(**pins)) == ["simulation"]
    # A dev policy accepts the simulation root, but debug only when allowDebug says so.
    assert checks(kind, {**claims, "simulated": True}, policy("dev", **pins)) == []
    assert checks(kind, {**claims, "debug": True}, policy("dev", **pins)) == ["debug"]
    assert checks(kind, {**claims, "debug": True}, policy("dev", allowDebug=True, **pins)) == []


def test_missing_debug_or_simulated_claims_fail_closed() -> None:
    claims = {k: v for k, v in NITRO.items() if k not in ("debug", "simulated")}
    assert checks("aws-nitro", claims) == ["simulation", "debug"]


def test_prod_refuses_allow_debug() -> None:
    with pytest.raises(ValueError, match="allowDebug: true is refused in prod"):
        policy("prod", allowDebug=True)


def test_nitro_every_pinned_pcr_and_binding() -> None:
    assert checks("aws-nitro", {**NITRO, "pcr0": "00" * 48}) == ["measurement"]
    assert checks("aws-nitro", {**NITRO, "pcr8": None}) == ["measurement"]
    # pcr1 is not pinned: its value does not matter.
    assert checks("aws-nitro", {**NITRO, "pcr1": "ff" * 48}) == []
    bound = policy(binding={"nonce": "aa", "publicKey": "bb"})
    assert checks("aws-nitro", NITRO, bound) == []
    assert checks("aws-nitro", {**NITRO, "nonce": "ab"}, bound) == ["binding"]
    assert checks("aws-nitro", {**NITRO, "public_key": None}, bound) == ["binding"]


def test_a_kind_without_approved_measurements_is_refused() -> None:
    only_nitro = Policy.load({"measurements": {"version": "1", "nitro": {"pcr0": PCR0}}})
    decision = validate("intel-tdx", TDX, only_nitro)
    assert [f.check for f in decision.failed] == ["measurement"]
    assert "measurements.tdx is not set" in decision.failed[0].message
    assert checks("unknown-kind", NITRO) == ["kind"]


def test_snp_measurement_host_data_tcb_and_report_data() -> None:
    assert checks("amd-sev-snp", {**SNP, "measurement": "13" * 48}) == ["measurement"]
    assert checks("amd-sev-snp", {**SNP, "host_data": "00" * 32}) == ["measurement"]
    minimum = policy(minSnpTcb={"snpSpl": 8, "ucodeSpl": 116})
    decision = validate("amd-sev-snp", SNP, minimum)
    assert [(f.check, "ucode_spl" in f.message) for f in decision.failed] == [("tcb", True)]
    assert checks("amd-sev-snp", SNP, policy(minSnpTcb={"snpSpl": 8, "ucodeSpl": 115})) == []
    # Report data is compared zero-padded to 64 bytes, as the hardware pads it.
    assert checks("amd-sev-snp", SNP, policy(binding={"reportData": "11" * 32})) == []
    assert checks("amd-sev-snp", SNP, policy(binding={"reportData": "11" * 31})) == ["binding"]


def test_vtpm_checks_the_nested_snp_claims_and_the_quote_nonce() -> None:
    assert checks("azure-vtpm", {**VTPM, "snp": {**SNP, "measurement": "00" * 48}}) == ["measurement"]
    assert checks("azure-vtpm", VTPM, policy(binding={"nonce": "0218"})) == []
    assert checks("azure-vtpm", VTPM, policy(binding={"nonce": "0219"})) == ["binding"]
    assert checks("azure-vtpm", {**VTPM, "snp": None}) == ["measurement"]


def test_tdx_mrtd_and_tcb_status() -> None:
    assert checks("intel-tdx", {**TDX, "mrtd": "00" * 48}) == ["measurement"]
    assert checks("intel-tdx", {**TDX, "tcb_status": "OutOfDate"}) == ["tcb"]
    assert checks("intel-tdx", {**TDX, "tcb_status": "OutOfDate"}, policy(tcbStatuses=["UpToDate", "OutOfDate"])) == []


def test_sgx_product_id_is_exact_and_svn_is_a_floor() -> None:
    assert checks("intel-sgx", {**SGX, "isvprodid": 4}) == ["measurement"]  # not ">=": another product
    assert checks("intel-sgx", {**SGX, "isvprodid": 2}) == ["measurement"]
    assert checks("intel-sgx", {**SGX, "isvsvn": 1}) == ["measurement"]
    assert checks("intel-sgx", {**SGX, "isvsvn": 9}) == []
    assert checks("intel-sgx", {**SGX, "mrsigner": "00" * 32}) == ["measurement"]


def test_tokens_need_their_pins_and_the_approved_workload() -> None:
    assert checks("cs-token", CS) == ["audience"]
    pinned = policy(token={"audience": "https://kms.example"})
    assert checks("cs-token", {**CS, "audience": "https://other"}, pinned) == ["audience"]
    assert checks("cs-token", {**CS, "image_digest": "sha256:" + "00" * 32}, pinned) == ["measurement"]
    assert checks("cs-token", {**CS, "swname": "GCE"}, pinned) == ["measurement"]
    assert checks("cs-token", {**CS, "support_attributes": ["LATEST"]}, pinned) == ["measurement"]
    dev = policy("dev", token={"audience": "https://kms.example"})
    assert checks("cs-token", {**CS, "support_attributes": ["LATEST"]}, dev) == []
    nonce = policy(token={"audience": "https://kms.example"}, binding={"nonce": "n1"})
    assert checks("cs-token", CS, nonce) == []
    assert checks("cs-token", {**CS, "eat_nonce": ["n9"]}, nonce) == ["binding"]
    assert checks("maa-token", MAA_SNP, policy(token={"audience": "https://kv.example"})) == ["issuer"]
    maa = policy(token={"audience": "https://kv.example", "issuer": "https://p.weu.attest.azure.net"})
    assert checks("maa-token", MAA_SNP, maa) == []
    assert checks("maa-token", {**MAA_SNP, "audience": None}, maa) == ["audience"]
    assert checks("maa-token", {**MAA_SNP, "issuer": "https://evil.attest.azure.net"}, maa) == ["issuer"]
    assert checks("maa-token", {**MAA_SNP, "launch_measurement": "00" * 48}, maa) == ["measurement"]
    assert checks("maa-token", {**MAA_SNP, "tee_type": "tpm"}, maa) == ["measurement"]
    assert checks("maa-token", {**MAA_SGX, "product_id": 4}, maa) == ["measurement"]
    assert checks("maa-token", {**MAA_SGX, "svn": 1}, maa) == ["measurement"]


def test_policy_from_a_stack_file_reads_the_same_measurements_as_the_program(tmp_path: Path) -> None:
    for stack in ("prod", "dev", "hospitals"):
        path = REPO / f"Pulumi.{stack}.yaml"
        loaded = Policy.from_file(path)
        settings = config.parse(config.read_stack_file(path))
        assert loaded.measurements == settings.collaboration.measurements
        assert loaded.environment == settings.environment
    assert isinstance(Policy.from_file(REPO / "Pulumi.prod.yaml").measurements, ApprovedMeasurements)


def test_unusable_policy_files_name_the_file_and_the_problem(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError, match="nope.yaml: cannot read"):
        Policy.from_file(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("measurements: [unclosed")
    with pytest.raises(PolicyError, match="bad.yaml: not valid"):
        Policy.from_file(bad)
    typo = tmp_path / "typo.json"
    typo.write_text('{"measurements": {"version": "1", "nitro": {"pcr0": "xyz"}}}')
    with pytest.raises(PolicyError, match=r"typo.json: measurements.nitro.pcr0: .*96 lowercase hex"):
        Policy.from_file(typo)
    debug = tmp_path / "debug.yaml"
    debug.write_text(yaml.safe_dump({"environment": "prod", "measurements": {"version": "1", "nitro": {"pcr0": "0" * 96}}}))
    with pytest.raises(PolicyError, match="all zeros"):
        Policy.from_file(debug)
    no_measurements = tmp_path / "Pulumi.x.yaml"
    no_measurements.write_text(yaml.safe_dump({"config": {"ccp:collaboration": {"name": "x"}}}))
    with pytest.raises(PolicyError, match="ccp:collaboration.measurements is missing"):
        Policy.from_file(no_measurements)
