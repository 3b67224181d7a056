"""TCB_VERSION: one u64 whose byte layout depends on the processor generation.

Milan and Genoa put the boot loader, TEE, SNP firmware and microcode SPLs in bytes 0, 1, 6 and 7;
Turin adds the FMC SPL in byte 0 and packs the rest into bytes 1, 2, 3 and 7 (SEV-SNP Firmware ABI
specification 56860, TCB_VERSION). The report does not say which layout it uses, so the product
comes from the endorsement chain; decoding a Turin value with the Milan layout would silently
report the wrong levels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

_MILAN_GENOA = {"bl_spl": 0, "tee_spl": 1, "snp_spl": 6, "ucode_spl": 7}

# product -> {SPL name: byte index inside the little-endian u64}
LAYOUTS: dict[str, dict[str, int]] = {
    "milan": _MILAN_GENOA,
    "genoa": _MILAN_GENOA,
    "turin": {"fmc_spl": 0, "bl_spl": 1, "tee_spl": 2, "snp_spl": 3, "ucode_spl": 7},
}
PRODUCTS = tuple(LAYOUTS)


@dataclass(frozen=True)
class TcbVersion:
    """A raw TCB_VERSION read with the layout of `product`."""

    product: str
    raw: int

    @classmethod
    def encode(cls, product: str, spl: Mapping[str, int]) -> "TcbVersion":
        """The u64 carrying `spl` (every SPL of the product's layout, each 0..255), reserved bytes zero."""
        layout = LAYOUTS[product]
        if set(spl) != set(layout) or not all(0 <= v <= 0xFF for v in spl.values()):
            raise ValueError(f"{product} TCB needs {sorted(layout)} each 0..255, got {dict(spl)}")
        return cls(product, sum(value << (8 * layout[name]) for name, value in spl.items()))

    @property
    def components(self) -> dict[str, int]:
        return {name: (self.raw >> (8 * index)) & 0xFF for name, index in LAYOUTS[self.product].items()}

    def claim(self) -> dict[str, int | str]:
        """The SPLs by name plus the raw value as fixed-width hex (what AMD KDS URLs and tools print)."""
        return {**self.components, "raw": f"0x{self.raw:016x}"}
