"""Kind `intel-tdx`: a TDX DCAP quote (v4, or v5 with a TDX 1.0 / 1.5 body) and its claims."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import ClassVar

from ..claims import Claims
from ..collateral import Collateral
from ..trust import TrustStore
from .quote import TdReport
from .verify import TDX, verify_evidence



@dataclass(frozen=True)
class TdxClaims(Claims):
    kind: ClassVar[str] = "intel-tdx"
    version: int
    mrtd: bytes
    rtmr0: bytes
    rtmr1: bytes
    rtmr2: bytes
    rtmr3: bytes
    mrseam: bytes
    mrsignerseam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mrconfigid: bytes
    mrowner: bytes
    mrownerconfig: bytes
    tee_tcb_svn: bytes
    report_data: bytes
    fmspc: bytes
    tcb_status: str | None  # None: no TCB Info supplied
    qe_tcb_status: str | None  # None: no QE Identity supplied

    @property
    def debug(self) -> bool:
        """TD_ATTRIBUTES bit 0 (TUD.DEBUG): the host VMM can read and write the TD's memory."""
        return bool(self.td_attributes[0] & 0x01)


def verify(
    evidence: bytes, collateral: Collateral, store: TrustStore, at: dt.datetime, *, kind: str
) -> TdxClaims:
    verified = verify_evidence(evidence, collateral, store, at, TDX)
    body = verified.quote.body
    assert isinstance(body, TdReport)  # verify_evidence checked the body type
    return TdxClaims(
        anchor=verified.anchor.name,
        version=verified.quote.header.version,
        mrtd=body.mrtd,
        rtmr0=body.rtmr0,
        rtmr1=body.rtmr1,
        rtmr2=body.rtmr2,
        rtmr3=body.rtmr3,
        mrseam=body.mrseam,
        mrsignerseam=body.mrsignerseam,
        seam_attributes=body.seam_attributes,
        td_attributes=body.td_attributes,
        xfam=body.xfam,
        mrconfigid=body.mrconfigid,
        mrowner=body.mrowner,
        mrownerconfig=body.mrownerconfig,
        tee_tcb_svn=body.tee_tcb_svn,
        report_data=body.report_data,
        fmspc=verified.pck.fmspc,
        tcb_status=verified.tcb_status,
        qe_tcb_status=verified.qe_tcb_status,
    )
