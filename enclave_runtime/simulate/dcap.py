"""Simulated Intel DCAP: TDX and SGX quotes in the exact layouts, under a simulated Intel-like PKI.

Why: the genuine vectors carry no TCB signing chain and no CRL that lists them, so the collateral
paths (signed TCB Info / QE Identity, TCB levels, revocation) can only be exercised with a PKI whose
keys we hold. The shapes follow Intel's: P-256/SHA-256 everywhere, root → PCK CA → PCK leaf with the
SGX extension (encoded with the verifier's own asn1crypto classes), a "TCB Signing" certificate
under the same root, quotes packed by the verifier's own layouts (`dcap.quote`).
Trust it only explicitly: `TrustStore(simulation_roots=[sim.root])`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ..attest.dcap import pck, quote
from ..attest.dcap.tcb import TCB_SIGNER
from .ca import Issued, ec_key, issue

QE_MRSIGNER = bytes.fromhex("dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5")
QE_ATTRIBUTES = bytes.fromhex("11000000000000000700000000000000")
INTEL_QE_VENDOR = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")


@dataclass(frozen=True)
class TcbLevel:
    """One tcbInfo level; `tdx` is None for SGX TCB Info."""

    status: str
    sgx: Sequence[int]
    pcesvn: int
    tdx: Sequence[int] | None = None


def _raw_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class _SgxType(core.Enumerated):
    _map = {0: "Standard", 1: "Scalable"}


def _sgx_extension(
    fmspc: bytes, pceid: bytes, components: Sequence[int], pcesvn: int, cpusvn: bytes
) -> bytes:
    base = pck.SGX_EXTENSION

    def entry(oid: str, value: core.Asn1Value) -> pck.Entry:
        return pck.Entry({"id": oid, "value": core.Any(value)})

    tcb = [entry(f"{base}.2.{i + 1}", core.Integer(svn)) for i, svn in enumerate(components)]
    tcb += [entry(f"{base}.2.17", core.Integer(pcesvn)), entry(f"{base}.2.18", core.OctetString(cpusvn))]
    top = pck.Entries(
        [
            entry(f"{base}.1", core.OctetString(bytes(16))),
            pck.Entry({"id": f"{base}.2", "value": core.Any(pck.Entries(tcb))}),
            entry(f"{base}.3", core.OctetString(pceid)),
            entry(f"{base}.4", core.OctetString(fmspc)),
            entry(f"{base}.5", _SgxType(0)),
        ]
    )
    return top.dump()


@dataclass
class SimulatedDcap:
    """One simulated platform: its PKI, its TCB (PCK extension) and its quoting enclave."""

    at: dt.datetime
    fmspc: bytes = bytes.fromhex("00906ed50000")
    pceid: bytes = bytes(2)
    components: tuple[int, ...] = (5, 5, 2, 2, 3, 1, 0, 3) + (0,) * 8
    pcesvn: int = 11
    qe_isvsvn: int = 4
    qe_auth_data: bytes = bytes(range(32))
    root_issued: Issued = field(init=False)
    pck_ca: Issued = field(init=False)
    pck_leaf: Issued = field(init=False)
    tcb_signer: Issued = field(init=False)
    attestation_key: ec.EllipticCurvePrivateKey = field(init=False)

    def __post_init__(self) -> None:
        window = {"not_before": self.at - dt.timedelta(days=1), "not_after": self.at + dt.timedelta(days=365)}
        sha256 = hashes.SHA256()
        curve = ec.SECP256R1()
        self.root_issued = issue(
            "Simulated SGX Root CA", ec_key(curve), None, ca=True, hash_alg=sha256, **window
        )
        self.pck_ca = issue(
            "Simulated SGX PCK Platform CA",
            ec_key(curve),
            self.root_issued,
            ca=True,
            hash_alg=sha256,
            **window,
        )
        extension = x509.UnrecognizedExtension(
            x509.ObjectIdentifier(pck.SGX_EXTENSION),
            _sgx_extension(self.fmspc, self.pceid, self.components, self.pcesvn, bytes(self.components)),
        )
        self.pck_leaf = issue(
            "Simulated SGX PCK Certificate",
            ec_key(curve),
            self.pck_ca,
            ca=False,
            hash_alg=sha256,
            extensions=[extension],
            **window,
        )
        self.tcb_signer = issue(
            TCB_SIGNER, ec_key(curve), self.root_issued, ca=False, hash_alg=sha256, **window
        )
        self.attestation_key = ec_key(curve)

    @property
    def root(self) -> x509.Certificate:
        return self.root_issued.certificate

    def signing_chain(self) -> list[x509.Certificate]:
        """What PCS serves as TCB-Info-Issuer-Chain: the TCB signing certificate and the root."""
        return [self.tcb_signer.certificate, self.root]

    def tdx_quote(
        self,
        *,
        version: int = 4,
        tdx15: bool = False,
        mrtd: bytes = b"\x11" * 48,
        td_attributes: bytes = bytes(8),
        tee_tcb_svn: bytes = bytes([3, 0, 5]) + bytes(13),
        report_data: bytes = b"\x22" * 64,
    ) -> bytes:
        body = quote.TdReport(
            tee_tcb_svn=tee_tcb_svn,
            mrseam=b"\x01" * 48,
            mrsignerseam=bytes(48),
            seam_attributes=bytes(8),
            td_attributes=td_attributes,
            xfam=bytes.fromhex("e71a060000000000"),
            mrtd=mrtd,
            mrconfigid=bytes(48),
            mrowner=bytes(48),
            mrownerconfig=bytes(48),
            rtmr0=b"\x02" * 48,
            rtmr1=b"\x03" * 48,
            rtmr2=b"\x04" * 48,
            rtmr3=bytes(48),
            report_data=report_data,
            tee_tcb_svn2=tee_tcb_svn if tdx15 else None,
            mrservicetd=b"\x05" * 48 if tdx15 else None,
        )
        return self._quote(version, quote.TEE_TDX, body, isvprodid=2)

    def sgx_quote(
        self,
        *,
        mrenclave: bytes = b"\x33" * 32,
        mrsigner: bytes = b"\x55" * 32,
        isvprodid: int = 7,
        isvsvn: int = 1,
        attributes: bytes = QE_ATTRIBUTES,
        report_data: bytes = b"\x44" * 64,
    ) -> bytes:
        body = quote.EnclaveReport(
            cpusvn=bytes(self.components),
            miscselect=0,
            attributes=attributes,
            mrenclave=mrenclave,
            mrsigner=mrsigner,
            isvprodid=isvprodid,
            isvsvn=isvsvn,
            report_data=report_data,
        )
        return self._quote(3, quote.TEE_SGX, body, isvprodid=1)

    def _quote(self, version: int, tee_type: int, body: quote.Body, *, isvprodid: int) -> bytes:
        header = quote.Header(
            version=version,
            att_key_type=quote.ATT_KEY_ECDSA_P256,
            tee_type=tee_type,
            qe_svn=self.qe_isvsvn,
            pce_svn=self.pcesvn,
            qe_vendor_id=INTEL_QE_VENDOR,
            user_data=bytes(20),
        )
        signed = quote.signed_region(header, body)
        public = self.attestation_key.public_key().public_numbers()
        key = public.x.to_bytes(32, "big") + public.y.to_bytes(32, "big")
        qe_report = quote.EnclaveReport(
            cpusvn=bytes(self.components),
            miscselect=0,
            attributes=QE_ATTRIBUTES,
            mrenclave=b"\x66" * 32,
            mrsigner=QE_MRSIGNER,
            isvprodid=isvprodid,
            isvsvn=self.qe_isvsvn,
            report_data=hashlib.sha256(key + self.qe_auth_data).digest() + bytes(32),
        )
        raw = qe_report.pack()
        certification = quote.QeCertification(
            qe_report,
            raw,
            _raw_sign(self.pck_leaf.key, raw),
            self.qe_auth_data,  # type: ignore[arg-type]
            b"".join(i.pem() for i in (self.pck_leaf, self.pck_ca, self.root_issued)),
        )
        signature = _raw_sign(self.attestation_key, signed)
        return signed + quote.signature_data(version, signature, key, certification)

    def tcb_info(self, kind_id: str, levels: Sequence[TcbLevel], *, valid_days: int = 30) -> bytes:
        """A PCS TCB Info response for this platform's FMSPC, signed by the simulated TCB signer."""
        body = {
            "id": kind_id,
            "version": 3,
            **self._dates(valid_days),
            "fmspc": self.fmspc.hex(),
            "pceId": self.pceid.hex(),
            "tcbType": 0,
            "tcbEvaluationDataNumber": 17,
            "tcbLevels": [self._level(level) for level in levels],
        }
        return self._signed("tcbInfo", body)

    def qe_identity(self, kind_id: str, levels: Sequence[tuple[int, str]], *, isvprodid: int) -> bytes:
        """A PCS QE Identity response; `levels` are (isvsvn, status), newest first."""
        body = {
            "id": kind_id,
            "version": 2,
            **self._dates(30),
            "tcbEvaluationDataNumber": 17,
            "miscselect": "00000000",
            "miscselectMask": "FFFFFFFF",
            "attributes": QE_ATTRIBUTES.hex(),
            "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
            "mrsigner": QE_MRSIGNER.hex().upper(),
            "isvprodid": isvprodid,
            "tcbLevels": [
                {"tcb": {"isvsvn": svn}, "tcbDate": "2024-01-01T00:00:00Z", "tcbStatus": status}
                for svn, status in levels
            ],
        }
        return self._signed("enclaveIdentity", body)

    def crl(self, revoked: Sequence[x509.Certificate]) -> x509.CertificateRevocationList:
        """A PCK CA CRL listing `revoked`."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.pck_ca.certificate.subject)
            .last_update(self.at - dt.timedelta(hours=1))
            .next_update(self.at + dt.timedelta(days=30))
        )
        for cert in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(cert.serial_number)
                .revocation_date(self.at)
                .build()
            )
        return builder.sign(self.pck_ca.key, hashes.SHA256())  # type: ignore[arg-type]

    def _dates(self, valid_days: int) -> dict[str, str]:
        issued = self.at - dt.timedelta(days=1)
        return {
            "issueDate": issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "nextUpdate": (issued + dt.timedelta(days=valid_days)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    @staticmethod
    def _level(level: TcbLevel) -> dict[str, object]:
        tcb: dict[str, object] = {"sgxtcbcomponents": [{"svn": s} for s in level.sgx], "pcesvn": level.pcesvn}
        if level.tdx is not None:
            tcb["tdxtcbcomponents"] = [{"svn": s} for s in level.tdx]
        return {"tcb": tcb, "tcbDate": "2024-01-01T00:00:00Z", "tcbStatus": level.status}

    def _signed(self, key: str, body: dict[str, object]) -> bytes:
        raw = json.dumps(body, separators=(",", ":")).encode()
        signature = _raw_sign(self.tcb_signer.key, raw)  # type: ignore[arg-type]
        return b'{"' + key.encode() + b'":' + raw + b',"signature":"' + signature.hex().encode() + b'"}'

    def pem(self, certs: Sequence[x509.Certificate]) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
