"""Self-service: the scaffold command, the shipped examples, and the supported key-release matrix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stacks import config
from stacks.new_collaboration import ScaffoldError, main, scaffold, templates

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for stack in ("banks", "hospitals"):
        shutil.copy(ROOT / f"Pulumi.{stack}.yaml", tmp_path)
    return tmp_path


def test_scaffold_copies_the_template_renaming_only_the_collaboration(root: Path) -> None:
    path = scaffold("acme-fraud", "banks", root)
    assert path == root / "Pulumi.acme-fraud.yaml"
    settings = config.parse(config.read_stack_file(path))
    template = config.parse(config.read_stack_file(root / "Pulumi.banks.yaml"))
    assert settings.collaboration.name == "acme-fraud"
    assert settings.collaboration.model_copy(update={"name": "banks-fraud"}) == template.collaboration
    text = path.read_text()
    assert text.startswith("# Scaffolded from Pulumi.banks.yaml")
    assert "# Two-bank fraud model" in text  # the template's comments are kept
    assert templates(root) == ["acme-fraud", "banks", "hospitals"]


def test_scaffold_refuses_to_overwrite(root: Path) -> None:
    scaffold("acme-fraud", "banks", root)
    before = (root / "Pulumi.acme-fraud.yaml").read_text()
    with pytest.raises(ScaffoldError, match="already exists"):
        scaffold("acme-fraud", "hospitals", root)
    assert (root / "Pulumi.acme-fraud.yaml").read_text() == before


@pytest.mark.parametrize("name", ["Acme", "a", "acme_fraud", "-acme", "x" * 33])
def test_scaffold_refuses_invalid_names(root: Path, name: str) -> None:
    with pytest.raises(ScaffoldError, match="not a valid collaboration name"):
        scaffold(name, "banks", root)


def test_unknown_template_lists_the_available_ones(root: Path) -> None:
    with pytest.raises(ScaffoldError, match="available: banks, hospitals"):
        scaffold("acme-fraud", "nope", root)


def test_command_line_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["Bad Name"]) == 2
    assert "not a valid collaboration name" in capsys.readouterr().err
    assert main(["banks"]) == 2  # Pulumi.banks.yaml exists: never overwritten
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("stack", ["hospitals", "banks"])
def test_examples_are_valid_prod_configs(stack: str) -> None:
    settings = config.parse(config.read_stack_file(ROOT / f"Pulumi.{stack}.yaml"))
    assert settings.environment == "prod"


def test_hospitals_has_one_party_and_one_host_per_cloud() -> None:
    collaboration = config.parse(config.read_stack_file(ROOT / "Pulumi.hospitals.yaml")).collaboration
    assert sorted(p.cloud for p in collaboration.parties) == ["aws", "azure", "gcp"]
    assert sorted((h.cloud, h.tee) for h in collaboration.workload.hosts) == [
        ("aws", "nitro"),
        ("azure", "confidential-containers"),
        ("gcp", "confidential-space"),
    ]


def test_a_party_without_a_documented_release_path_is_refused_clearly() -> None:
    raw = config.read_stack_file(ROOT / "Pulumi.hospitals.yaml")
    raw["collaboration"]["workload"]["hosts"] = [
        h for h in raw["collaboration"]["workload"]["hosts"] if h["cloud"] == "gcp"
    ]
    with pytest.raises(config.ConfigError) as error:
        config.parse(raw)
    problems = "\n".join(error.value.problems)
    assert "ccp:collaboration.parties[0].cloud: 'aws' has no workload host its key can be released to" in problems
    assert "AWS KMS releases keys to attested Nitro Enclaves only" in problems
    assert "ccp:collaboration.parties[1].cloud: 'azure' has no workload host" in problems
