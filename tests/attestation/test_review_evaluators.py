"""Fail-closed details of the review's key-release evaluators and the verifier's debug verdicts that the
mutation check (`make mutate`) found unpinned: each test breaks if the check it names is weakened."""

from __future__ import annotations

from typing import Any

import pytest

from enclave_runtime.attest.tokens import CsClaims, MaaClaims
from policies.review.key_release import azure as kr_azure
from policies.review.key_release import gcp as kr_gcp

AUTHORITY = "https://sharedweu.weu.attest.azure.net"
DIGEST = "sha256:" + "a1" * 32


def policy(condition: dict[str, Any]) -> dict[str, Any]:
    return {"version": "1.0.0", "anyOf": [{"authority": AUTHORITY, "allOf": [condition]}]}


@pytest.mark.parametrize(("actual", "expected", "released"), [
    (False, False, True), (0, False, False), ("false", False, False), (True, True, True), (1, True, False), (0, 0, True),
])
def test_azure_equals_compares_the_json_type_too(actual: Any, expected: Any, released: bool) -> None:
    """Key Vault's `equals` is type-strict: a token saying is-debuggable 0 does not satisfy `equals false`."""
    token = {"iss": AUTHORITY, "x-ms-sevsnpvm-is-debuggable": actual}
    assert kr_azure.evaluate(policy({"claim": "x-ms-sevsnpvm-is-debuggable", "equals": expected}), token) is released


def identity(number: str = "123456789012", pool: str = "ccp") -> kr_gcp.FederatedIdentity:
    return kr_gcp.FederatedIdentity(number, pool, f"gcpcs::{DIGEST}", {"image_digest": DIGEST})


def principal_set(number: str, pool: str) -> str:
    return f"principalSet://iam.googleapis.com/projects/{number}/locations/global/workloadIdentityPools/{pool}/attribute.image_digest/{DIGEST}"


@pytest.mark.parametrize(("number", "pool", "matches"), [
    ("123456789012", "ccp", True), ("999999999999", "ccp", False), ("123456789012", "other-pool", False),
])
def test_gcp_principal_set_matches_only_its_own_pool(number: str, pool: str, matches: bool) -> None:
    """The same digest attribute in another project's (or another pool's) principalSet is another identity."""
    assert kr_gcp.member_matches(principal_set(number, pool), identity()) is matches
    binding = kr_gcp.Binding("roles/cloudkms.cryptoKeyDecrypter", principal_set(number, pool))
    assert kr_gcp.decrypt_allowed([binding], identity()) is matches


def _claims(cls: type, **fields: Any) -> Any:
    instance = object.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(instance, name, value)
    return instance


@pytest.mark.parametrize(("is_debuggable", "debug"), [(False, False), (True, True), (None, True)])
def test_maa_token_silent_on_debuggability_counts_as_debug(is_debuggable: bool | None, debug: bool) -> None:
    assert _claims(MaaClaims, is_debuggable=is_debuggable).debug is debug


@pytest.mark.parametrize(("dbgstat", "debug"), [("disabled-since-boot", False), ("enabled", True), (None, True), ("", True)])
def test_cs_token_without_production_dbgstat_counts_as_debug(dbgstat: str | None, debug: bool) -> None:
    assert _claims(CsClaims, dbgstat=dbgstat).debug is debug
