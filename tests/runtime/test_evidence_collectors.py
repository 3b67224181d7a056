"""Evidence collectors driven against fake machines: a configfs-tsm tree whose "kernel" is a test object,
a real Unix-socket HTTP server speaking the Confidential Space launcher's API, token files, device nodes.

The ioctls (/dev/nsm, /dev/sev-guest) cannot be faked with files, so their requests and responses are
checked byte for byte against the kernel and NSM layouts, built here by hand; the ioctl call itself
runs on hardware only. End-to-end tests verify collected evidence with `enclave_runtime.attest.verify`
under the simulators' roots, so a collector that mangles bytes fails verification.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import http.server
import json
import os
import shutil
import socketserver
import struct
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from enclave_runtime.attest import Collateral, TrustStore, verify
from enclave_runtime.evidence import Evidence, EvidenceError, detect
from enclave_runtime.evidence.base import fixed_report_data
from enclave_runtime.evidence.confidential_space import ConfidentialSpace
from enclave_runtime.evidence.configfs_tsm import ConfigfsTsm, certificate_table
from enclave_runtime.evidence.nitro_nsm import NSM_IOCTL, NitroNsm, _NsmMessage
from enclave_runtime.evidence.nitro_nsm import decode_response as decode_nsm
from enclave_runtime.evidence.nitro_nsm import encode_request as encode_nsm
from enclave_runtime.evidence.sev_guest import SNP_GET_REPORT, SevGuest, _GuestRequest, describe_failure
from enclave_runtime.evidence.sev_guest import decode_response as decode_snp
from enclave_runtime.evidence.sev_guest import encode_request as encode_snp

REPORT_DATA = bytes(range(32))
PADDED = REPORT_DATA + bytes(32)
# GHCB specification §4.1.8.1 GUIDs, typed here rather than imported so the test checks the module.
VCEK, VLEK = "63da758d-e664-4564-adc5-f4b93be8accd", "a8074bc2-a25a-483e-aae6-39c045a0b8a1"
ASK, ARK = "4ab7b379-bbac-4fe4-a02f-05aef327c782", "c0b406a4-a803-4952-9743-3fb6014cd0ae"
JWT = b"eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2lnbmF0dXJl"


def table(entries: list[tuple[str, bytes]]) -> bytes:
    """An SNP certificate table as the host writes it: headers, zero terminator, then the blobs."""
    offset = 24 * (len(entries) + 1)
    headers, blobs = b"", b""
    for guid, blob in entries:
        headers += uuid.UUID(guid).bytes + struct.pack("<II", offset + len(blobs), len(blob))
        blobs += blob
    return headers + bytes(24) + blobs


# --- the shared shape -------------------------------------------------------------------------------


def test_report_data_is_zero_padded_to_64_bytes_and_longer_is_refused() -> None:
    assert fixed_report_data(b"\x01\x02") == b"\x01\x02" + bytes(62)
    with pytest.raises(EvidenceError, match="65 bytes; SNP and TDX sign exactly 64"):
        fixed_report_data(bytes(65))


def test_evidence_refuses_an_unknown_kind_and_empty_evidence() -> None:
    with pytest.raises(EvidenceError, match="unknown evidence kind 'amd-snp'"):
        Evidence("amd-snp", b"x")  # type: ignore[arg-type]
    with pytest.raises(EvidenceError, match="intel-tdx evidence is empty"):
        Evidence("intel-tdx", b"")


# --- configfs-tsm -----------------------------------------------------------------------------------


class FakeTsm:
    """The kernel side of configfs-tsm, on a plain directory.

    `mkdir` creates the attributes as configfs does; `outblob`/`auxblob` are FIFOs served by threads, so
    the report is made when it is read, from the inblob written before, and `generation` then counts the
    writes the collector made (inblob, privlevel when written) plus `races` extra writes "by someone else".
    """

    def __init__(
        self, provider: str, report: Callable[[bytes], bytes], auxblob: bytes = b"", races: int = 0
    ) -> None:
        self.provider, self.report, self.auxblob, self.races = provider, report, auxblob, races
        self.inblobs: list[bytes] = []
        self.privlevels: list[bytes] = []
        self._stop = threading.Event()
        self._threads: list[tuple[Path, threading.Thread]] = []

    def mkdir(self, path: Path) -> None:
        os.mkdir(path)
        (path / "provider").write_text(f"{self.provider}\n")
        (path / "generation").write_text("0\n")
        (path / "inblob").write_bytes(b"")
        self._serve(path / "outblob", self._outblob)
        if self.provider == "sev_guest":
            (path / "privlevel").write_bytes(b"")
            self._serve(path / "auxblob", lambda _: self.auxblob)

    def rmdir(self, path: Path) -> None:
        self._stop.set()
        for fifo, thread in self._threads:
            while thread.is_alive():  # a server blocked opening its FIFO wakes when a reader appears
                reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
                thread.join(0.05)
                os.close(reader)
        shutil.rmtree(path)

    def _serve(self, fifo: Path, produce: Callable[[Path], bytes]) -> None:
        os.mkfifo(fifo)

        def loop() -> None:
            while True:
                with open(fifo, "wb") as pipe:  # blocks until the collector opens the attribute
                    if self._stop.is_set():
                        return
                    pipe.write(produce(fifo.parent))
                    # A fresh FIFO for the next read, in place before this one's reader sees EOF: a
                    # second serve on the same FIFO could reach a reader that has not closed it yet.
                    os.mkfifo(f"{fifo}.next")
                    os.replace(f"{fifo}.next", fifo)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        self._threads.append((fifo, thread))

    def _outblob(self, report: Path) -> bytes:
        inblob = (report / "inblob").read_bytes()
        privlevel = (report / "privlevel").read_bytes() if (report / "privlevel").exists() else b""
        self.inblobs.append(inblob)
        self.privlevels.append(privlevel)
        writes = 1 + (1 if privlevel else 0) + (1 if self.races > 0 else 0)
        self.races -= 1
        generation = report / "generation"
        generation.write_text(f"{int(generation.read_text()) + writes}\n")
        return self.report(inblob)


def collector(tmp_path: Path, kernel: FakeTsm, **options: int) -> ConfigfsTsm:
    reports = tmp_path / "sys/kernel/config/tsm/report"
    reports.mkdir(parents=True)
    return ConfigfsTsm(reports, mkdir=kernel.mkdir, rmdir=kernel.rmdir, **options)


def test_configfs_snp_report_binds_padded_report_data_and_names_the_certificate_table(tmp_path: Path) -> None:
    auxblob = table([(VCEK, b"vcek-der"), (ASK, b"ask-der"), (ARK, b"ark-der")])
    kernel = FakeTsm("sev_guest", lambda inblob: b"REPORT:" + inblob, auxblob)
    tsm = collector(tmp_path, kernel)

    evidence = tsm.collect(REPORT_DATA)

    assert evidence == Evidence(
        "amd-sev-snp", b"REPORT:" + PADDED, [("vcek", b"vcek-der"), ("ask", b"ask-der"), ("ark", b"ark-der")]
    )
    assert kernel.inblobs == [PADDED]
    assert kernel.privlevels == [b""]  # not written unless asked
    assert list(tsm.reports.iterdir()) == []  # the report instance is removed


def test_configfs_tdx_report_has_no_certificate_table(tmp_path: Path) -> None:
    kernel = FakeTsm("tdx_guest", lambda inblob: b"QUOTE:" + inblob)
    evidence = collector(tmp_path, kernel).collect(REPORT_DATA)
    assert evidence == Evidence("intel-tdx", b"QUOTE:" + PADDED, [])


def test_configfs_writes_privlevel_and_counts_it_as_a_write(tmp_path: Path) -> None:
    kernel = FakeTsm("sev_guest", lambda inblob: b"R" + inblob)
    evidence = collector(tmp_path, kernel, privlevel=2).collect(REPORT_DATA)
    assert evidence.evidence == b"R" + PADDED
    assert kernel.privlevels == [b"2"]


def test_configfs_retries_when_another_writer_moved_generation(tmp_path: Path) -> None:
    kernel = FakeTsm("sev_guest", lambda inblob: b"R" + inblob, races=2)
    evidence = collector(tmp_path, kernel, attempts=3).collect(REPORT_DATA)
    assert evidence.evidence == b"R" + PADDED
    assert kernel.inblobs == [PADDED] * 3


def test_configfs_gives_up_after_the_bounded_attempts_and_still_removes_the_instance(tmp_path: Path) -> None:
    kernel = FakeTsm("sev_guest", lambda inblob: b"R" + inblob, races=99)
    tsm = collector(tmp_path, kernel, attempts=2)
    with pytest.raises(EvidenceError, match="generation changed under us on each of 2 attempts"):
        tsm.collect(REPORT_DATA)
    assert len(kernel.inblobs) == 2
    assert list(tsm.reports.iterdir()) == []


def test_configfs_refuses_an_unknown_provider_before_writing(tmp_path: Path) -> None:
    kernel = FakeTsm("cca_guest", lambda inblob: b"R")
    tsm = collector(tmp_path, kernel)
    with pytest.raises(
        EvidenceError, match=r"provider is 'cca_guest'; this runtime reads \['sev_guest', 'tdx_guest'\]"
    ):
        tsm.collect(REPORT_DATA)
    assert kernel.inblobs == []
    assert list(tsm.reports.iterdir()) == []


def test_configfs_refuses_long_report_data_before_creating_an_instance(tmp_path: Path) -> None:
    kernel = FakeTsm("sev_guest", lambda inblob: b"R")
    tsm = collector(tmp_path, kernel)
    with pytest.raises(EvidenceError, match="report data is 65 bytes"):
        tsm.collect(bytes(65))
    assert list(tsm.reports.iterdir()) == []


def test_configfs_missing_mount_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(
        EvidenceError, match=f"cannot create report instance {tmp_path}/absent/ccp-.*No such file"
    ):
        ConfigfsTsm(tmp_path / "absent").collect(REPORT_DATA)


def test_certificate_table_names_the_asvk_when_the_report_is_vlek_signed_and_skips_non_certificates() -> None:
    extra = "ecae0c0f-9502-43b1-afa2-0ae2e0d565b6"  # extra platform info: not a certificate
    auxblob = table([(VLEK, b"vlek"), (ASK, b"asvk"), (extra, b"\x01" * 8), (ARK, b"ark")])
    assert certificate_table(auxblob) == [("vlek", b"vlek"), ("asvk", b"asvk"), ("ark", b"ark")]
    assert certificate_table(b"") == []


def test_certificate_table_refuses_a_missing_terminator_and_out_of_range_entries() -> None:
    with pytest.raises(EvidenceError, match="without the all-zero terminator"):
        certificate_table(table([(VCEK, b"v")])[:24])
    corrupt = uuid.UUID(VCEK).bytes + struct.pack("<II", 48, 100) + bytes(24) + b"short"
    with pytest.raises(
        EvidenceError, match=f"entry {VCEK} points at bytes 48..148, outside the certificate data"
    ):
        certificate_table(corrupt)


def test_configfs_end_to_end_with_a_simulated_snp_report_verifies() -> None:
    from enclave_runtime.simulate.snp import SimulatedSnp

    sim = SimulatedSnp()
    measurement = bytes(range(48))
    vcek, ask, ark = (certificate.public_bytes(Encoding.DER) for certificate in sim.certificates)
    auxblob = table([(VCEK, vcek), (ASK, ask), (ARK, ark)])
    kernel = FakeTsm(
        "sev_guest", lambda inblob: sim.report(measurement=measurement, report_data=inblob), auxblob
    )
    with tempfile.TemporaryDirectory() as directory:
        evidence = collector(Path(directory), kernel).collect(REPORT_DATA)

    collateral = Collateral()
    for name, der in evidence.collateral:
        collateral.add(der, name)
    claims = verify(
        evidence.kind, evidence.evidence, collateral=collateral, store=TrustStore(simulation_roots=[sim.root])
    )
    assert [name for name, _ in evidence.collateral] == ["vcek", "ask", "ark"]
    assert claims.report_data == PADDED  # type: ignore[attr-defined]
    assert claims.anchor == "simulation"


# --- /dev/sev-guest ---------------------------------------------------------------------------------


def test_snp_ioctl_layout_matches_sev_guest_h() -> None:
    assert ctypes.sizeof(_GuestRequest) == 32
    assert (
        _GuestRequest.req_data.offset,
        _GuestRequest.resp_data.offset,
        _GuestRequest.exitinfo2.offset,
    ) == (8, 16, 24)
    assert SNP_GET_REPORT == 0xC0205300  # _IOWR('S', 0, 32)


def test_snp_request_is_user_data_vmpl_and_zeroed_reserved_bytes() -> None:
    assert encode_snp(b"\xaa\xbb", 2) == b"\xaa\xbb" + bytes(62) + b"\x02\x00\x00\x00" + bytes(28)
    with pytest.raises(EvidenceError, match="vmpl is 4: SNP privilege levels are 0..3"):
        encode_snp(b"", 4)


def snp_response(status: int, report: bytes, size: int | None = None) -> bytes:
    header = struct.pack("<II", status, len(report) if size is None else size) + bytes(24)
    return (header + report).ljust(4000, b"\0")


def test_snp_response_yields_the_report_of_report_size_bytes() -> None:
    report = bytes(range(256)) * 4 + bytes(160)  # 1184 bytes
    assert decode_snp(snp_response(0, report)) == report


def test_snp_response_errors_name_the_firmware_status_and_corrupt_sizes() -> None:
    with pytest.raises(EvidenceError, match=r"status 0x16 \(INVALID_PARAMETERS"):
        decode_snp(snp_response(0x16, b""))
    with pytest.raises(EvidenceError, match="report_size is 3969; it must be 1..3968"):
        decode_snp(snp_response(0, b"", size=3969))
    with pytest.raises(EvidenceError, match="snp_report_resp is 3999 bytes, not 4000"):
        decode_snp(bytes(3999))


def test_snp_ioctl_failure_names_errno_firmware_and_vmm_errors() -> None:
    message = describe_failure(Path("/dev/sev-guest"), OSError(5, "Input/output error"), (2 << 32) | 0x16)
    assert message == (
        "SNP_GET_REPORT on /dev/sev-guest failed: Input/output error; firmware error 0x16 (INVALID_PARAM); "
        "VMM error 2 (BUSY: the host is throttling guest requests; retry later)"
    )


def test_snp_ioctl_on_a_plain_file_fails_with_a_clear_error(tmp_path: Path) -> None:
    device = tmp_path / "sev-guest"
    device.write_bytes(b"")
    with pytest.raises(EvidenceError, match=f"SNP_GET_REPORT on {device} failed: Inappropriate ioctl"):
        SevGuest(device).collect(REPORT_DATA)


# --- /dev/nsm ---------------------------------------------------------------------------------------


def test_nsm_ioctl_layout_matches_the_driver() -> None:
    assert ctypes.sizeof(_NsmMessage) == 32
    assert NSM_IOCTL == 0xC0200A00  # _IOWR(0x0A, 0, sizeof(struct nsm_raw))


def test_nsm_request_is_serde_cbor_of_the_attestation_variant() -> None:
    assert encode_nsm(b"\x01") == (
        b"\xa1\x6bAttestation\xa3\x69user_data\x41\x01\x65nonce\xf6\x6apublic_key\xf6"
    )
    with pytest.raises(EvidenceError, match="user_data is 513 bytes; the NSM takes at most 512"):
        encode_nsm(bytes(513))


def test_nsm_error_responses_are_named() -> None:
    with pytest.raises(
        EvidenceError, match=r"NSM refused the attestation request: InputTooLarge \(user_data"
    ):
        decode_nsm(cbor2.dumps({"Error": "InputTooLarge"}))
    with pytest.raises(EvidenceError, match=r"got \{'Attestation': \{'doc': bytes\}\}"):
        decode_nsm(cbor2.dumps({"Attestation": {"doc": b"x"}}))
    with pytest.raises(EvidenceError, match="is not CBOR"):
        decode_nsm(b"\xff\xff")


def test_nsm_response_with_a_simulated_document_verifies() -> None:
    from enclave_runtime.simulate.nitro import SimulatedNitro

    sim = SimulatedNitro()
    now = dt.datetime.now(dt.timezone.utc)
    response = cbor2.dumps({"Attestation": {"document": sim.attest(user_data=REPORT_DATA, at=now)}})

    document = decode_nsm(response)

    claims = verify("aws-nitro", document, store=TrustStore(simulation_roots=[sim.root]), at=now)
    assert claims.user_data == REPORT_DATA  # type: ignore[attr-defined]
    assert claims.anchor == "simulation"


def test_nsm_ioctl_on_a_plain_file_fails_with_a_clear_error(tmp_path: Path) -> None:
    device = tmp_path / "nsm"
    device.write_bytes(b"")
    with pytest.raises(EvidenceError, match=f"NSM attestation ioctl on {device} failed: Inappropriate ioctl"):
        NitroNsm(device).collect(REPORT_DATA)


def test_nsm_attest_binds_a_public_key_and_fails_clearly_off_hardware(tmp_path: Path) -> None:
    """KMS's `Recipient` needs the key in `public_key` (not `user_data`): the request says exactly that."""
    from enclave_runtime.evidence.nitro_nsm import encode_request

    spki = b"\x30\x82" + bytes(10)
    assert cbor2.loads(encode_request(None, None, spki)) == {
        "Attestation": {"user_data": None, "nonce": None, "public_key": spki}
    }
    device = tmp_path / "nsm"
    device.write_bytes(b"")
    with pytest.raises(EvidenceError, match=f"NSM attestation ioctl on {device} failed: Inappropriate ioctl"):
        NitroNsm(device).attest(spki)


# --- Confidential Space -----------------------------------------------------------------------------


class Launcher:
    """The launcher's token server on a real Unix socket: records requests, answers `status`/`body`."""

    def __init__(self, directory: Path, status: int = 200, body: bytes = JWT) -> None:
        self.requests: list[tuple[str, str, str, bytes]] = []
        launcher = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                launcher.requests.append(
                    (self.command, self.path, self.headers["Content-Type"], self.rfile.read(length))
                )
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(str(directory / "teeserver.sock"), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def launcher_dir() -> Iterator[Path]:
    """A short path: AF_UNIX socket paths are limited to 108 bytes, pytest's tmp_path can exceed that."""
    directory = Path(tempfile.mkdtemp(prefix="cs-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory)


def test_cs_custom_token_sends_audience_and_report_data_nonce(launcher_dir: Path) -> None:
    server = Launcher(launcher_dir)
    try:
        evidence = ConfidentialSpace("https://kms.example", launcher=launcher_dir).collect(REPORT_DATA)
    finally:
        server.close()
    assert evidence == Evidence("cs-token", JWT)
    [(method, path, content_type, body)] = server.requests
    assert (method, path, content_type) == ("POST", "/v1/token", "application/json")
    assert json.loads(body) == {
        "audience": "https://kms.example",
        "nonces": [REPORT_DATA.hex()],
        "token_type": "OIDC",
    }


def test_cs_launcher_refusal_is_reported_with_status_and_body(launcher_dir: Path) -> None:
    server = Launcher(launcher_dir, status=400, body=b"token_type is a required parameter")
    try:
        with pytest.raises(
            EvidenceError, match="answered POST /v1/token with 400 Bad Request: token_type is a required"
        ):
            ConfidentialSpace("aud", launcher=launcher_dir).collect(REPORT_DATA)
    finally:
        server.close()


def test_cs_answer_that_is_not_a_jwt_is_refused(launcher_dir: Path) -> None:
    server = Launcher(launcher_dir, body=b"<html>oops</html>")
    try:
        with pytest.raises(EvidenceError, match="did not give a JWT"):
            ConfidentialSpace("aud", launcher=launcher_dir).collect(REPORT_DATA)
    finally:
        server.close()


def test_cs_missing_socket_names_it(launcher_dir: Path) -> None:
    with pytest.raises(EvidenceError, match=f"launcher socket {launcher_dir}/teeserver.sock does not exist"):
        ConfidentialSpace("aud", launcher=launcher_dir).collect(REPORT_DATA)


def test_cs_nonce_must_fit_the_launchers_bounds(launcher_dir: Path) -> None:
    with pytest.raises(EvidenceError, match="report data is 64 bytes; .* must be 5..37 bytes"):
        ConfidentialSpace("aud", launcher=launcher_dir).collect(bytes(64))
    with pytest.raises(EvidenceError, match="report data is 4 bytes"):
        ConfidentialSpace("aud", launcher=launcher_dir).collect(bytes(4))


def test_cs_default_token_file_only_without_report_data(launcher_dir: Path) -> None:
    (launcher_dir / "attestation_verifier_claims_token").write_bytes(JWT + b"\n")
    assert ConfidentialSpace(launcher=launcher_dir).collect(b"") == Evidence("cs-token", JWT)
    with pytest.raises(EvidenceError, match="binds report data only with a custom audience"):
        ConfidentialSpace(launcher=launcher_dir).collect(REPORT_DATA)
    (launcher_dir / "attestation_verifier_claims_token").unlink()
    with pytest.raises(EvidenceError, match="cannot read the Confidential Space token .*No such file"):
        ConfidentialSpace(launcher=launcher_dir).collect(b"")


# --- detect -----------------------------------------------------------------------------------------


def machine(root: Path, *paths: str) -> Path:
    for name in paths:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            (root / name).mkdir(exist_ok=True)
        else:
            (root / name).write_bytes(b"")
    return root


def test_detect_picks_by_what_the_machine_has(tmp_path: Path) -> None:
    nitro = detect(machine(tmp_path / "a", "dev/nsm", "dev/sev-guest"))
    assert isinstance(nitro, NitroNsm) and nitro.device == tmp_path / "a/dev/nsm"

    tsm = detect(machine(tmp_path / "b", "sys/kernel/config/tsm/report/", "dev/tdx_guest"))
    assert isinstance(tsm, ConfigfsTsm) and tsm.reports == tmp_path / "b/sys/kernel/config/tsm/report"

    snp = detect(machine(tmp_path / "c", "dev/sev-guest"))
    assert isinstance(snp, SevGuest) and snp.device == tmp_path / "c/dev/sev-guest"

    cs = detect(
        machine(tmp_path / "d", "run/container_launcher/attestation_verifier_claims_token"), audience="aud"
    )
    assert isinstance(cs, ConfidentialSpace)
    assert (cs.audience, cs.launcher) == ("aud", tmp_path / "d/run/container_launcher")


def test_detect_lists_what_it_looked_for(tmp_path: Path) -> None:
    root = machine(tmp_path, "dev/tdx_guest", "dev/tpmrm0")
    with pytest.raises(EvidenceError) as error:
        detect(root)
    message = str(error.value)
    for looked_for in ("dev/nsm", "sys/kernel/config/tsm/report", "dev/sev-guest", "dev/tpmrm0",
                       "run/container_launcher/teeserver.sock", "run/container_launcher/attestation_verifier_claims_token"):  # fmt: skip
        assert f"{tmp_path}/{looked_for}" in message
    assert "TDX quotes need configfs-tsm" in message
    assert "Azure HCL report NV index 0x01400001 did not answer" in message
