"""`make bench` (part 2): what verifying evidence costs over the cryptography it cannot avoid.

For one genuine sample of each kind, in one process and one run (the machines are shared and noisy,
so only same-run ratios mean anything), the median of:
- `warm`: `enclave_runtime.attest.verify` with the certificate links already verified (the chain
  verifier caches verified links by fingerprint pair, as a long-running key service or runtime does);
- `bare`: the signature verifications a warm verification must still perform, called directly on
  `cryptography` objects prepared in advance (Nitro: the COSE signature; SNP: the report signature;
  TDX/SGX: the quote and QE-report signatures; vTPM: the TPM quote and the SNP report signatures);
- `cold`: the first verification in a fresh cache, against `bare` plus every chain-link verification.
Goal: warm ≤ 1.5× bare.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from enclave_runtime.attest import Collateral, verify
from enclave_runtime.attest import trust
from enclave_runtime.attest.collateral import AMD_SERIAL_ZERO_WARNING
from enclave_runtime.attest.dcap.quote import Quote
from enclave_runtime.attest.dcap.verify import _pem_chain
from enclave_runtime.attest.hcl import HclReport
from enclave_runtime.attest.snp.report import SIGNED_SIZE, SnpReport

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
WARM_RUNS, COLD_RUNS = 200, 20


@dataclass
class Case:
    kind: str
    file: str
    with_: list[str]
    at: str

    def evidence(self) -> bytes:
        return (VECTORS / self.file).read_bytes()

    def collateral(self) -> Collateral:
        return Collateral.from_files(VECTORS / f for f in self.with_)

    def when(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.at)


CASES = [
    Case("aws-nitro", "aws-nitro/nitro_evervault_beta_20221013.cbor", [], "2022-10-13T08:58:02.136+00:00"),
    Case("amd-sev-snp", "amd-sev-snp/snp_trustee_milan_v2_report.bin",
         ["amd-sev-snp/snp_trustee_milan_vcek.der", "amd-sev-snp/ask_ark_milan.pem"], "2024-01-01T00:00:00+00:00"),
    Case("intel-tdx", "intel-tdx/tdx_gtg_v4_spr_e4_quote.dat", [], "2022-09-21T13:20:31+00:00"),
    Case("intel-sgx", "intel-sgx/sgx_trustee_occlum_v3_debug_quote.dat", [], "2023-04-27T15:35:16+00:00"),
    Case("azure-vtpm", "tpm/azure_cvm_genoa_vtpm_evidence.json", ["amd-sev-snp/ask_ark_genoa.pem"],
         "2025-06-01T00:00:00+00:00"),
]

Op = Callable[[], object]


def _ecdsa(key: ec.EllipticCurvePublicKey, r: int, s: int, data: bytes, alg: hashes.HashAlgorithm) -> Op:
    signature = encode_dss_signature(r, s)
    return lambda: key.verify(signature, data, ec.ECDSA(alg))


def _links(chain: list[x509.Certificate]) -> list[Op]:
    """Each certificate verified by the next, and the root by itself."""
    pairs = list(zip(chain, chain[1:])) + [(chain[-1], chain[-1])]
    return [lambda c=c, p=p: c.verify_directly_issued_by(p) for c, p in pairs]


def _snp_ops(report: bytes, vcek: x509.Certificate, ask_ark: list[x509.Certificate]) -> tuple[list[Op], list[Op]]:
    parsed = SnpReport.parse(report)
    key = vcek.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    sig = _ecdsa(key, parsed.signature_r, parsed.signature_s, report[:SIGNED_SIZE], hashes.SHA384())
    return [sig], _links([vcek, *ask_ark])


def _bare_ops(case: Case) -> tuple[list[Op], list[Op]]:
    """(signature operations every verification performs, chain-link operations a cold one adds)."""
    raw = case.evidence()
    if case.kind == "aws-nitro":
        protected, _, payload, signature = cbor2.loads(raw)
        document = cbor2.loads(payload)
        leaf = x509.load_der_x509_certificate(document["certificate"])
        key = leaf.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
        r, s = int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big")
        bundle = [x509.load_der_x509_certificate(c) for c in document["cabundle"]]
        return [_ecdsa(key, r, s, to_sign, hashes.SHA384())], _links([leaf, *reversed(bundle)])
    if case.kind == "amd-sev-snp":
        vcek, *ask_ark = case.collateral().certificates
        return _snp_ops(raw, vcek, ask_ark)
    if case.kind in ("intel-tdx", "intel-sgx"):
        quote = Quote.parse(raw)
        attestation_key = ec.EllipticCurvePublicNumbers(
            int.from_bytes(quote.attestation_key[:32], "big"), int.from_bytes(quote.attestation_key[32:], "big"),
            ec.SECP256R1(),
        ).public_key()
        cert = quote.certification
        chain = _pem_chain(cert.pck_chain_pem)
        pck = chain[0].public_key()
        assert isinstance(pck, ec.EllipticCurvePublicKey)
        half = lambda b: (int.from_bytes(b[:32], "big"), int.from_bytes(b[32:], "big"))  # noqa: E731
        return [
            _ecdsa(attestation_key, *half(quote.signature), quote.signed, hashes.SHA256()),
            _ecdsa(pck, *half(cert.qe_report_signature), cert.qe_report_raw, hashes.SHA256()),
        ], _links(chain)
    # azure-vtpm: the TPM quote (RSA PKCS#1 v1.5 by the AK in the HCL runtime data) and the SNP report.
    doc = json.loads(raw)
    hcl = HclReport.parse(bytes(doc["report"]))
    ak_jwk = next(k for k in json.loads(hcl.runtime_data)["keys"] if k["kid"] == "HCLAkPub")
    from jwt.algorithms import RSAAlgorithm

    ak = RSAAlgorithm.from_jwk(ak_jwk)
    message, signature = bytes(doc["quote"]["message"]), bytes(doc["quote"]["signature"])
    quote_op: Op = lambda: ak.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr]  # noqa: E731
    vcek = x509.load_pem_x509_certificate(doc["vcek"].encode())
    sig_ops, link_ops = _snp_ops(hcl.snp_report, vcek, case.collateral().certificates)
    return [quote_op, *sig_ops], link_ops


def _median(action: Op, runs: int, before: Op | None = None) -> float:
    samples = []
    for _ in range(runs):
        if before is not None:
            before()
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _clear_caches() -> None:
    trust.CHAINS.clear()
    trust._CERT_CACHE.clear()


def main() -> int:
    warnings.filterwarnings("ignore", message=AMD_SERIAL_ZERO_WARNING)
    if not (VECTORS / "manifest.json").is_file():
        print(f"bench_verify: no attestation vectors at {VECTORS}; put the shared folder beside the checkout")
        return 2
    print(f"{'kind':<12} {'warm (ms)':>9} {'bare (ms)':>9} {'ratio':>6} {'cold (ms)':>9} {'bare+chain':>10} {'ratio':>6}")
    for case in CASES:
        evidence, collateral, at = case.evidence(), case.collateral(), case.when()
        run = lambda: verify(case.kind, evidence, collateral=collateral, at=at)  # noqa: E731
        signatures, links = _bare_ops(case)
        run()  # warm-up: imports, certificate parsing, link cache
        warm = _median(run, WARM_RUNS)
        bare = _median(lambda: [op() for op in signatures], WARM_RUNS)
        cold = _median(run, COLD_RUNS, before=_clear_caches)
        full = _median(lambda: [op() for op in signatures + links], COLD_RUNS)
        print(
            f"{case.kind:<12} {warm * 1e3:>9.3f} {bare * 1e3:>9.3f} {warm / bare:>5.2f}x "
            f"{cold * 1e3:>9.3f} {full * 1e3:>10.3f} {cold / full:>5.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
