"""Kind `intel-sgx`: an SGX DCAP quote (v3) and its claims."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import ClassVar

from ..claims import Claims
from ..collateral import Collateral
from ..trust import TrustStore
from .quote import EnclaveReport
from .verify import SGX, verify_evidence

_DEBUG = 0x02  # SGX ATTRIBUTES.FLAGS bit 1


@dataclass(frozen=True)
class SgxClaims(Claims):
    kind: ClassVar[str] = "intel-sgx"
    version: int
    mrenclave: bytes
    mrsigner: bytes
    isvprodid: int
    isvsvn: int
    attributes: bytes
    miscselect: int
    cpusvn: bytes
    report_data: bytes
    fmspc: bytes
    tcb_status: str | None  # None: no TCB Info supplied
    qe_tcb_status: str | None  # None: no QE Identity supplied

    @property
    def debug(self) -> bool:
        """ATTRIBUTES.FLAGS bit 1 (DEBUG): the enclave's memory can be read with EDBGRD."""
        return bool(self.attributes[0] & _DEBUG)


def verify(
    evidence: bytes, collateral: Collateral, store: TrustStore, at: dt.datetime, *, kind: str
) -> SgxClaims:
    verified = verify_evidence(evidence, collateral, store, at, SGX)
    body = verified.quote.body
    assert isinstance(body, EnclaveReport)  # verify_evidence checked the body type
    return SgxClaims(
        anchor=verified.anchor.name,
        version=verified.quote.header.version,
        mrenclave=body.mrenclave,
        mrsigner=body.mrsigner,
        isvprodid=body.isvprodid,
        isvsvn=body.isvsvn,
        attributes=body.attributes,
        miscselect=body.miscselect,
        cpusvn=body.cpusvn,
        report_data=body.report_data,
        fmspc=verified.pck.fmspc,
        tcb_status=verified.tcb_status,
        qe_tcb_status=verified.qe_tcb_status,
    )
