"""TPM quotes from a real (software) TPM: swtpm + tpm2-tools make them, `verify_quote` and the collector use them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import ECAlgorithm

from enclave_runtime.attest import Collateral, VerificationError, verify
from enclave_runtime.attest.tpm import AttestationKey, verify_quote
from enclave_runtime.evidence.azure_vtpm import AK_HANDLE, HCL_REPORT_NV_INDEX, USER_DATA_NV_INDEX, collect_evidence
from tests.runtime.vectors import path, read, when

TOOLS = ("swtpm", "tpm2_startup", "tpm2_createek", "tpm2_createak", "tpm2_quote", "tpm2_nvdefine", "tpm2_evictcontrol")
RSA_AK, OTHER_RSA_AK = "0x81000010", "0x81000011"
EXTENDED = {16: hashlib.sha256(b"workload").digest(), 23: hashlib.sha256(b"config").digest()}
NONCE = bytes.fromhex("c0ffee") * 16


@dataclass(frozen=True)
class Tpm:
    tcti: str
    directory: Path

    def run(self, *args: str) -> str:
        result = subprocess.run([args[0], f"--tcti={self.tcti}", *args[1:]], capture_output=True, text=True, cwd=self.directory)
        assert result.returncode == 0, f"{' '.join(args)}: {result.stderr}"
        return result.stdout

    def flush(self) -> None:
        """swtpm has no resource manager: free transient objects and sessions the tools leave behind."""
        self.run("tpm2_flushcontext", "-t")
        self.run("tpm2_flushcontext", "-s")

    def persist_ak(self, handle: str, algorithm: str, scheme: str) -> AttestationKey:
        self.run("tpm2_createak", "-C", "ek.ctx", "-c", "ak.ctx", "-G", algorithm, "-g", "sha256", "-s", scheme)
        self.flush()
        self.run("tpm2_evictcontrol", "-C", "o", "-c", "ak.ctx", handle)
        self.flush()
        self.run("tpm2_readpublic", "-c", handle, "-f", "pem", "-o", f"{handle}.pem")
        key = load_pem_public_key((self.directory / f"{handle}.pem").read_bytes())
        assert isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey))
        return key

    def quote(self, handle: str, pcrs: str, fmt: str) -> tuple[bytes, bytes, dict[int, bytes]]:
        self.run("tpm2_quote", "-c", handle, "-l", f"sha256:{pcrs}", "-q", NONCE.hex(), "-m", "msg", "-s", "sig",
                 "-f", fmt, "-o", "pcrs", "-F", "values")  # fmt: skip
        values = (self.directory / "pcrs").read_bytes()
        indices = [int(i) for i in pcrs.split(",")]
        pcr_values = {index: values[32 * n : 32 * n + 32] for n, index in enumerate(indices)}
        return (self.directory / "msg").read_bytes(), (self.directory / "sig").read_bytes(), pcr_values


def _free_port_pair() -> int:
    """A free loopback port whose successor is free too: the swtpm TCTI finds the control port at port + 1."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise AssertionError("no two consecutive free loopback ports")


@pytest.fixture(scope="session")
def tpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tpm]:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        reason = f"software TPM tools not installed: {missing} (make tools installs swtpm, swtpm-tools, tpm2-tools)"
        if os.environ.get("CCP_REQUIRE_SWTPM") == "1":
            pytest.fail(reason + "; CCP_REQUIRE_SWTPM=1 makes this a failure", pytrace=False)
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("swtpm")
    port = _free_port_pair()
    process = subprocess.Popen(
        ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={directory}", "--flags", "not-need-init",
         "--server", f"type=tcp,port={port},bindaddr=127.0.0.1", "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        device = Tpm(f"swtpm:host=127.0.0.1,port={port}", directory)
        device.run("tpm2_startup", "-c")
        device.run("tpm2_createek", "-G", "ecc", "-c", "ek.ctx")
        device.flush()
        for index, digest in EXTENDED.items():
            device.run("tpm2_pcrextend", f"{index}:sha256={digest.hex()}")
        yield device
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def rsa_ak(tpm: Tpm) -> AttestationKey:
    return tpm.persist_ak(RSA_AK, "rsa", "rsassa")


@pytest.fixture(scope="session")
def ecc_ak(tpm: Tpm) -> AttestationKey:
    """At Azure's AK handle, so the collector quotes with it."""
    return tpm.persist_ak(AK_HANDLE, "ecc", "ecdsa")


ALL = ",".join(str(i) for i in range(24))


@pytest.mark.parametrize("fmt", ["tss", "plain"])
def test_rsa_quote_verifies_with_nonce_and_pcrs(tpm: Tpm, rsa_ak: AttestationKey, fmt: str) -> None:
    message, signature, pcrs = tpm.quote(RSA_AK, ALL, fmt)
    info = verify_quote(message, signature, pcrs, rsa_ak, nonce=NONCE)
    assert info.nonce == NONCE
    assert info.pcrs == pcrs and sorted(info.pcrs) == list(range(24))
    assert info.pcrs[16] == hashlib.sha256(bytes(32) + EXTENDED[16]).digest()
    assert info.pcrs[23] == hashlib.sha256(bytes(32) + EXTENDED[23]).digest()
    assert info.pcrs[0] == bytes(32)


@pytest.mark.parametrize("fmt", ["tss", "plain"])
def test_ecc_quote_of_a_subset_verifies(tpm: Tpm, ecc_ak: AttestationKey, fmt: str) -> None:
    message, signature, pcrs = tpm.quote(AK_HANDLE, "0,16,23", fmt)
    info = verify_quote(message, signature, pcrs, ecc_ak, nonce=NONCE)
    assert sorted(info.pcrs) == [0, 16, 23] and info.nonce == NONCE


def test_flipped_pcr_value_fails_binding(tpm: Tpm, rsa_ak: AttestationKey) -> None:
    message, signature, pcrs = tpm.quote(RSA_AK, ALL, "plain")
    pcrs[16] = bytes([pcrs[16][0] ^ 1]) + pcrs[16][1:]
    with pytest.raises(VerificationError) as caught:
        verify_quote(message, signature, pcrs, rsa_ak)
    assert caught.value.check == "binding" and "pcrDigest" in caught.value.message


def test_wrong_nonce_fails_binding(tpm: Tpm, rsa_ak: AttestationKey) -> None:
    message, signature, pcrs = tpm.quote(RSA_AK, ALL, "plain")
    with pytest.raises(VerificationError) as caught:
        verify_quote(message, signature, pcrs, rsa_ak, nonce=b"another nonce")
    assert caught.value.check == "binding" and NONCE.hex() in caught.value.message


def test_other_ak_fails_signature(tpm: Tpm, rsa_ak: AttestationKey, ecc_ak: AttestationKey) -> None:
    other = tpm.persist_ak(OTHER_RSA_AK, "rsa", "rsassa")
    message, signature, pcrs = tpm.quote(RSA_AK, ALL, "tss")
    for key in (other, ecc_ak):
        with pytest.raises(VerificationError) as caught:
            verify_quote(message, signature, pcrs, key)
        assert caught.value.check == "signature"


def _hcl_report_with_ak(ak: AttestationKey) -> bytes:
    """The genuine HCL report with its runtime data replaced by one naming `ak` as HCLAkPub.

    swtpm caps an NV index at 2048 bytes, below the 2600 of Azure's, so the runtime JSON is rewritten
    compactly anyway; naming the swtpm AK in it is the attack the SNP binding must stop.
    """
    genuine = read("amd-sev-snp/azure_cvm_genoa_hcl_report.bin")
    runtime = json.loads(genuine[1236 : 1236 + int.from_bytes(genuine[1232:1236], "little")])
    jwk = {**ECAlgorithm.to_jwk(ak, as_dict=True), "kid": "HCLAkPub"}  # type: ignore[arg-type]
    data = json.dumps({"keys": [jwk], "vm-configuration": runtime["vm-configuration"]}, separators=(",", ":")).encode()
    u32 = lambda value: value.to_bytes(4, "little")  # noqa: E731
    header = genuine[:8] + u32(1236 + len(data)) + genuine[12:32]
    runtime_header = u32(20 + len(data)) + u32(1) + u32(2) + u32(1) + u32(len(data))
    return header + genuine[32:1216] + runtime_header + data


def test_collector_returns_the_nv_report_and_a_quote_by_the_azure_ak(tpm: Tpm, ecc_ak: AttestationKey) -> None:
    report = _hcl_report_with_ak(ecc_ak)
    assert len(report) <= 2048
    (tpm.directory / "hcl.bin").write_bytes(report)
    tpm.run("tpm2_nvdefine", "-C", "o", HCL_REPORT_NV_INDEX, "-s", str(len(report)))
    tpm.run("tpm2_nvwrite", "-C", "o", HCL_REPORT_NV_INDEX, "-i", "hcl.bin")

    evidence = collect_evidence(NONCE, user_data=b"bound user data", vcek_pem="", tcti=tpm.tcti)

    document = json.loads(evidence)
    assert bytes(document["report"]) == report
    quote = document["quote"]
    pcrs = {i: bytes(value) for i, value in enumerate(quote["pcrs"])}
    info = verify_quote(bytes(quote["message"]), bytes(quote["signature"]), pcrs, ecc_ak, nonce=NONCE)
    assert info.pcrs[16] == hashlib.sha256(bytes(32) + EXTENDED[16]).digest()
    tpm.run("tpm2_nvread", "-C", "o", USER_DATA_NV_INDEX, "-o", "user_data.bin")
    assert (tpm.directory / "user_data.bin").read_bytes() == b"bound user data".ljust(64, b"\0")

    document["vcek"] = read("amd-sev-snp/snp_azure_genoa_vcek.pem").decode()
    with pytest.raises(VerificationError) as caught:
        verify(
            "azure-vtpm",
            json.dumps(document).encode(),
            collateral=Collateral.from_files([path("amd-sev-snp/ask_ark_genoa.pem")]),
            at=when("2025-06-01T00:00:00+00:00"),
        )
    assert caught.value.check == "binding"
    assert "HCL runtime data" in caught.value.message and "b581f12e29a2d7d6" in caught.value.message
