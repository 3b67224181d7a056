"""A simulated AMD SEV-SNP platform: byte-exact ATTESTATION_REPORTs under an AMD-shaped chain.

The chain mirrors AMD's KDS: a self-signed RSA ARK, an ASK (or, for VLEKs, an ASVK named
"SEV-VLEK-<Product>") and an EC P-384 VCEK/VLEK carrying AMD's TCB, productName and hwID extensions,
every certificate signed RSA-PSS/SHA-384 as AMD signs. The report is built field by field at the
offsets of the Firmware ABI specification and parsed back by the verifier, so a layout mistake in
either shows up as a failed round trip rather than two bugs agreeing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
from typing import TYPE_CHECKING

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ..attest.snp.report import (
    ECDSA_P384_SHA384,
    POLICY_DEBUG,
    REPORT_SIZE,
    SIGNATURE_COMPONENT_SIZE,
    SIGNED_SIZE,
    SIGNING_KEYS,
)
from ..attest.snp.tcb import LAYOUTS, TcbVersion
from ..attest.snp.vcek import CSP_ID, HWID, PRODUCT_NAME, SPL_OIDS, STRUCT_VERSION
from .ca import ec_key, issue, rsa_key

if TYPE_CHECKING:
    from ..evidence.base import Evidence

# Plausible values per product: the productName AMD's KDS writes, a CPUID (family, model, stepping)
# and a TCB. Turin's TCB layout has the extra FMC level.
PRODUCT_NAMES = {"milan": "Milan-B0", "genoa": "Genoa-B1", "turin": "Turin-C0"}
CPUID = {"milan": (0x19, 0x01, 0x01), "genoa": (0x19, 0x11, 0x01), "turin": (0x1A, 0x02, 0x00)}
DEFAULT_TCB: dict[str, dict[str, int]] = {
    "milan": {"bl_spl": 3, "tee_spl": 0, "snp_spl": 8, "ucode_spl": 115},
    "genoa": {"bl_spl": 10, "tee_spl": 0, "snp_spl": 23, "ucode_spl": 84},
    "turin": {"fmc_spl": 1, "bl_spl": 2, "tee_spl": 0, "snp_spl": 3, "ucode_spl": 72},
}
GUEST_POLICY = 0x30000  # SMT allowed, reserved bit 17 set (must be one), debug off
FIRMWARE_VERSION = (1, 55, 21)  # major, minor, build


class SimulatedSnp:
    """One simulated chip. `ark_key`/`ask_key` let callers reuse RSA keys (their generation is slow)."""

    def __init__(
        self,
        product: str = "milan",
        signing_key: str = "vcek",
        at: dt.datetime | None = None,
        *,
        tcb: dict[str, int] | None = None,
        ark_key: rsa.RSAPrivateKey | None = None,
        ask_key: rsa.RSAPrivateKey | None = None,
    ) -> None:
        if product not in LAYOUTS:
            raise ValueError(f"product must be one of {sorted(LAYOUTS)}, not {product!r}")
        if signing_key not in SIGNING_KEYS.values():
            raise ValueError(f"signing_key must be 'vcek' or 'vlek', not {signing_key!r}")
        now = at or dt.datetime.now(dt.timezone.utc)
        self.product = product
        self.signing_key = signing_key
        self.tcb = TcbVersion.encode(product, tcb or DEFAULT_TCB[product])
        self.chip_id = hashlib.sha512(f"ccp simulated {product} chip".encode()).digest()
        title = product.capitalize()
        start = now - dt.timedelta(days=1)
        self.ark = issue(
            f"ARK-{title}",
            ark_key or rsa_key(),
            None,
            ca=True,
            not_before=start,
            not_after=now + dt.timedelta(days=25 * 365),
            rsa_pss=True,
        )
        self.ask = issue(
            f"SEV-{title}" if signing_key == "vcek" else f"SEV-VLEK-{title}",
            ask_key or rsa_key(),
            self.ark,
            ca=True,
            not_before=start,
            not_after=now + dt.timedelta(days=25 * 365),
            rsa_pss=True,
        )
        self._leaf_key = ec_key(ec.SECP384R1())
        self.leaf = issue(
            f"SEV-{signing_key.upper()}",
            self._leaf_key,
            self.ask,
            ca=False,
            not_before=start,
            not_after=now + dt.timedelta(days=7 * 365),
            rsa_pss=True,
            extensions=self._extensions(),
        )

    @property
    def certificates(self) -> list[x509.Certificate]:
        """VCEK/VLEK, ASK/ASVK, ARK: what `--with` would carry."""
        return [self.leaf.certificate, self.ask.certificate, self.ark.certificate]

    @property
    def root(self) -> x509.Certificate:
        return self.ark.certificate

    def _extensions(self) -> list[x509.ExtensionType]:
        values: dict[x509.ObjectIdentifier, bytes] = {
            STRUCT_VERSION: core.Integer(0).dump(),
            PRODUCT_NAME: core.IA5String(PRODUCT_NAMES[self.product]).dump(),
        }
        values.update(
            {SPL_OIDS[name]: core.Integer(level).dump() for name, level in self.tcb.components.items()}
        )
        if self.signing_key == "vcek":
            values[HWID] = self.chip_id  # raw bytes, as in AMD's VCEKs
        else:
            values[CSP_ID] = core.IA5String("ccp simulated cloud").dump()
        return [x509.UnrecognizedExtension(oid, value) for oid, value in values.items()]

    def report(
        self,
        *,
        measurement: bytes,
        report_data: bytes = b"",
        host_data: bytes = b"",
        debug: bool = False,
        tcb: dict[str, int] | None = None,
        vmpl: int = 0,
        version: int = 3,
        policy: int | None = None,
    ) -> bytes:
        """A signed 1184-byte report. `tcb` overrides the reported TCB (default: the VCEK's own)."""
        if len(measurement) != 48 or len(report_data) > 64 or len(host_data) > 32:
            raise ValueError("measurement is 48 bytes, report_data at most 64, host_data at most 32")
        guest_policy = (GUEST_POLICY if policy is None else policy) | (POLICY_DEBUG if debug else 0)
        reported = self.tcb if tcb is None else TcbVersion.encode(self.product, tcb)
        selector = {v: k for k, v in SIGNING_KEYS.items()}[self.signing_key]
        chip_id = self.chip_id if self.signing_key == "vcek" else bytes(64)
        major, minor, build = FIRMWARE_VERSION
        body = b"".join(
            [
                struct.pack("<IIQ", version, 0, guest_policy),
                bytes(16),  # family_id
                bytes(16),  # image_id
                struct.pack("<IIQQI", vmpl, ECDSA_P384_SHA384, reported.raw, 0b1, selector << 2),
                bytes(4),
                report_data.ljust(64, b"\0"),
                measurement,
                host_data.ljust(32, b"\0"),
                bytes(48),  # id_key_digest
                bytes(48),  # author_key_digest
                hashlib.sha256(measurement + report_data).digest(),  # report_id
                b"\xff" * 32,  # report_id_ma: no migration agent
                struct.pack("<Q", reported.raw),
                bytes(CPUID[self.product]) if version >= 3 else bytes(3),
                bytes(0x1A0 - 0x18B),
                chip_id,
                struct.pack("<Q", reported.raw),  # committed_tcb
                struct.pack("<4B", build, minor, major, 0) * 2,  # current, committed firmware version
                struct.pack("<QQQ", reported.raw, 0, 0),  # launch_tcb, launch/current mitigation vectors
            ]
        )
        return self.sign(body.ljust(SIGNED_SIZE, b"\0"))

    def sign(self, report: bytes) -> bytes:
        """The report with bytes 0x000..0x29F of `report` signed by this chip's VCEK/VLEK.

        Public so tests can change a signed field and still present a valid signature: only the
        binding checks can then catch the change.
        """
        signed = report[:SIGNED_SIZE]
        r, s = decode_dss_signature(self._leaf_key.sign(signed, ec.ECDSA(hashes.SHA384())))
        signature = r.to_bytes(SIGNATURE_COMPONENT_SIZE, "little") + s.to_bytes(
            SIGNATURE_COMPONENT_SIZE, "little"
        )
        return (signed + signature).ljust(REPORT_SIZE, b"\0")


class SimulatedSnpGuest:
    """A guest on a `SimulatedSnp` chip, as an evidence source: `snp_report(report_data) -> Evidence`.

    It stands in for what an Azure confidential container group's SKR sidecar reads from the UVM
    (/dev/sev-guest or configfs-tsm, https://github.com/microsoft/confidential-sidecar-containers):
    a report whose HOST_DATA is the SHA-256 of the group's CCE policy, fixed by the host at launch
    (https://learn.microsoft.com/azure/container-instances/confidential-containers-attestation-concepts),
    with the VCEK/ASK/ARK chain as collateral. `host_data`, `debug` and `vmpl` are what the release
    cases vary; the guest cannot choose them at report time, only `report_data`.
    """

    def __init__(
        self,
        sim: SimulatedSnp,
        host_data: bytes,
        *,
        debug: bool = False,
        vmpl: int = 0,
        measurement: bytes | None = None,
    ) -> None:
        if len(host_data) != 32:
            raise ValueError(f"host_data is {len(host_data)} bytes; SNP HOST_DATA is 32 (a SHA-256 of the CCE policy)")
        self.sim = sim
        self.host_data = host_data
        self.debug = debug
        self.vmpl = vmpl
        self.measurement = measurement or hashlib.sha384(b"ccp simulated confidential container UVM").digest()

    def snp_report(self, report_data: bytes) -> "Evidence":
        from ..evidence.base import Evidence, fixed_report_data

        from cryptography.hazmat.primitives import serialization

        report = self.sim.report(
            measurement=self.measurement,
            report_data=fixed_report_data(report_data),
            host_data=self.host_data,
            debug=self.debug,
            vmpl=self.vmpl,
        )
        names = ("vcek" if self.sim.signing_key == "vcek" else "vlek", "ask", "ark")
        chain = [(n, c.public_bytes(serialization.Encoding.DER)) for n, c in zip(names, self.sim.certificates)]
        return Evidence("amd-sev-snp", report, chain)
