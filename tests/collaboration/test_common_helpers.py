"""The helpers all three clouds and the rules share: one bounded name, one child shape, one all-zero check."""

from __future__ import annotations

import pulumi
import pytest

from components.aws.common import short_name
from components.common import bounded, child
from components.gcp.common import bounded as gcp_bounded
from enclave_runtime.measurements import is_all_zero
from policies.zero_trust.rules import _base


def test_bounded_keeps_short_names_and_hashes_long_ones_stably() -> None:
    assert bounded("short", 10) == "short"
    long = "a" * 20
    assert bounded(long, 16) == "aaaaaaa-" + "42492da0"  # 7 + '-' + 8 hex = 16
    assert len(bounded(long, 16)) == 16 and bounded(long, 16) == bounded(long, 16)
    assert bounded("ab-" * 10, 12) != bounded("ab-" * 11, 12)  # different names stay different
    assert short_name("x" * 40, "y" * 40) == bounded("x" * 40 + "-" + "y" * 40, 63)
    assert gcp_bounded(long, 16) == bounded(long, 16, digest_chars=6) == "aaaaaaaaa-42492d"


def test_child_is_parented_and_keeps_every_dependency() -> None:
    parent, first, second = (pulumi.CustomResource.__new__(pulumi.CustomResource) for _ in range(3))
    options = child(parent, first, depends_on=[second], protect=True)
    assert options.parent is parent and options.protect is True
    assert options.depends_on == [first, second]
    assert child(parent).depends_on is None


@pytest.mark.parametrize(
    ("value", "zero"),
    [("0" * 96, True), ("sha256:" + "0" * 64, True), ("SHA256:" + "0" * 64, True), ("", False), ("sha256:", False),
     ("0" * 95 + "1", False)],
)
def test_one_all_zero_check_for_the_model_and_the_rules(value: str, zero: bool) -> None:
    assert is_all_zero(value) is zero
    assert _base.is_all_zero is is_all_zero
