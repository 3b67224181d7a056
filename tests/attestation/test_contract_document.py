"""The contract file's own consistency checks (tools/mutations.py: contract-other-collaboration,
contract-version-mismatch): another collaboration's file and a version that is not the measurements' are refused."""

from __future__ import annotations

from pathlib import Path

from stacks import contract as cli

from test_contract import edit_contract, prod_settings, repo_with_contract


def test_another_collaborations_contract_is_refused(tmp_path: Path) -> None:
    root = repo_with_contract(tmp_path)
    edit_contract(root, lambda d: d.update(collaboration="other-study"))
    result = cli.status(prod_settings(), root, "prod")
    assert not result.complete
    assert any("is the contract of collaboration 'other-study'" in p for p in result.problems), result.problems


def test_version_other_than_the_measurements_is_refused(tmp_path: Path) -> None:
    root = repo_with_contract(tmp_path)
    edit_contract(root, lambda d: d.update(version="not-the-version"))
    result = cli.status(prod_settings(), root, "prod")
    assert not result.complete
    assert any("is not the measurements' version" in p for p in result.problems), result.problems
