"""Kind `intel-tdx`: a TDX DCAP quote (v4, or v5 with a TDX 1.0 / 1.5 body) and its claims."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import ClassVar

from ..claims import Claims
from ..collateral import Collateral
from ..errors import VerificationError
from ..trust import TrustStore
from .quote import TEE_TDX, Quote, TdReport
from .verify import verify_quote

VERSIONS = (4, 5)


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
    quote = Quote.parse(evidence)
    if quote.header.tee_type != TEE_TDX or not isinstance(quote.body, TdReport):
        raise VerificationError(
            "structure",
            f"quote has tee_type {quote.header.tee_type:#x} (SGX), expected {TEE_TDX:#x} (TDX): verify it as intel-sgx",
        )
    if quote.header.version not in VERSIONS:
        raise VerificationError(
            "structure", f"TDX quote version is {quote.header.version}, expected one of {VERSIONS}"
        )
    verified = verify_quote(quote, collateral, store, at)
    body = quote.body
    return TdxClaims(
        anchor=verified.anchor.name,
        version=quote.header.version,
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
