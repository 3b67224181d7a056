"""The Collaboration component under mocks: one Site per cloud used, a data key for every party."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.collaboration import Collaboration, CollaborationArgs, clouds_used
from policies.review import project
from policies.review.mocks import run
from stacks import config

ROOT = Path(__file__).resolve().parents[2]
SITE_TYPES = {"aws": "ccp:aws:Site", "azure": "ccp:azure:Site", "gcp": "ccp:gcp:Site"}
KEY_TYPES = {"aws": "aws:kms/key:Key", "azure": "azure-native:keyvault:Key", "gcp": "gcp:kms/cryptoKey:CryptoKey"}


def build(stack: str):
    proj = project.load(ROOT, stack)
    settings = config.parse(config.from_config_texts(proj.config))
    built: dict[str, Collaboration] = {}

    def program() -> None:
        built["component"] = Collaboration(
            settings.collaboration.name,
            CollaborationArgs(
                environment=settings.environment,
                collaboration=settings.collaboration,
                log_retention_days=settings.log_retention_days,
                options=settings.site_options(),
            ),
        )

    recording = run(program, stack=stack, config=proj.config)
    return settings, built["component"], recording


@pytest.mark.parametrize(
    ("stack", "clouds"),
    [("dev", ["aws", "azure", "gcp"]), ("hospitals", ["aws", "azure", "gcp"]), ("banks", ["aws"])],
)
def test_one_site_per_cloud_and_a_key_for_every_party(stack: str, clouds: list[str]) -> None:
    settings, component, recording = build(stack)
    name = settings.collaboration.name
    assert clouds_used(settings.collaboration) == clouds
    assert component.site_names == [f"{name}-{cloud}" for cloud in clouds]
    assert isinstance(component.site_names, list)

    (root,) = recording.of_type("ccp:index:Collaboration")
    assert root.name == name
    assert root.parent == recording.stack_urn
    for cloud in clouds:
        (site,) = recording.of_type(SITE_TYPES[cloud])
        assert site.name == f"{name}-{cloud}"
        assert site.parent == root.urn
    for cloud in {"aws", "azure", "gcp"} - set(clouds):
        assert recording.of_type(SITE_TYPES[cloud]) == []

    assert sorted(component.keys) == sorted(p.name for p in settings.collaboration.parties)
    for party in settings.collaboration.parties:
        keys = [
            r
            for r in recording.of_type(KEY_TYPES[party.cloud])
            if "PartyDataKey" in r.urn
            and (r.properties.get("labels" if party.cloud == "gcp" else "tags") or {}).get("party") == party.name
        ]
        assert len(keys) == 1, party.name
        tags = keys[0].properties.get("labels" if party.cloud == "gcp" else "tags")
        assert tags["collaboration"] == name
        assert tags["measurements"] == settings.collaboration.measurements.fingerprint()


def test_banks_keys_are_two_distinct_kms_keys_bound_to_the_same_pcr0() -> None:
    settings, _, recording = build("banks")

    keys = [r for r in recording.of_type("aws:kms/key:Key") if "PartyDataKey" in r.urn]
    assert sorted(k.properties["tags"]["party"] for k in keys) == ["bank-north", "bank-south"]
    pcr0 = settings.collaboration.measurements.nitro.pcr0
    for key in keys:
        allow = next(s for s in json.loads(key.properties["policy"])["Statement"] if s["Sid"] == "AllowDecryptByAttestedEnclave")
        assert allow["Condition"]["StringEqualsIgnoreCase"] == {"kms:RecipientAttestation:ImageSha384": pcr0}
