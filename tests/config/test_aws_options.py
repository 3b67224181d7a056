"""`ccp-aws:*` (components/aws/options.py): the enclave image size, validated like `ccp-azure`/`ccp-gcp`.

The size the build reports (`ccp-aws:enclaveImageSizeMib`) sizes every enclave host's allocator and
the EKS nodes' allocator and pods' hugepages (>= 4x the image, what `nitro-cli run-enclave` needs);
an image whose enclave memory does not fit a host's instance type is refused at that key. Unknown keys
are refused on the review's path (the stack file through `policies.review.project`) and on `pulumi
up`'s (the runtime config through `stacks.config._runtime_config`), both `from_config_texts` + `parse`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.aws.enclave_host import EIF_MEMORY_FACTOR, PARENT_MEMORY_MIB, enclave_memory_mib
from components.aws.options import DEFAULT_EIF_SIZE_MIB, AwsOptions
from policies.review import project
from policies.review.run import REVIEW_DEPLOYMENT, ccp_settings
from stacks.config import ConfigError, from_config_texts, parse, read_stack_file, validate

ROOT = Path(__file__).resolve().parents[2]


def dev(**aws: Any) -> dict[str, Any]:
    raw = copy.deepcopy(read_stack_file(ROOT / "Pulumi.dev.yaml"))
    if aws:
        raw["ccp-aws"] = aws
    return raw


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(raw, REVIEW_DEPLOYMENT)
    return caught.value.problems


def test_default_and_compliant_sizes() -> None:
    assert parse(dev(), REVIEW_DEPLOYMENT).aws == AwsOptions(enclave_image_size_mib=DEFAULT_EIF_SIZE_MIB)
    assert parse(dev(enclaveImageSizeMib=2048), REVIEW_DEPLOYMENT).aws.enclave_image_size_mib == 2048
    # m6i.xlarge: 16 GiB less the parent's 2 GiB -> at most a 3584 MiB image
    largest = (16384 - PARENT_MEMORY_MIB) // EIF_MEMORY_FACTOR
    assert parse(dev(enclaveImageSizeMib=largest), REVIEW_DEPLOYMENT).aws.enclave_image_size_mib == largest


def test_an_image_too_large_for_the_instance_types_memory_is_refused_at_its_key() -> None:
    assert problems(dev(enclaveImageSizeMib=3585)) == [
        "ccp-aws:enclaveImageSizeMib: an enclave image of 3585 MiB needs 14592 MiB of enclave memory (4x, what "
        "nitro-cli run-enclave requires) on host workload.hosts[0]: enclave memory 14592 MiB does not fit "
        "instance type 'm6i.xlarge': it has 16384 MiB and the parent keeps 2048 MiB, so at most 14336 MiB can be "
        "reserved for the enclave (an image of at most 3584 MiB); use a smaller image or an instance type with "
        "more memory"
    ]


def test_a_larger_instance_type_takes_the_larger_image() -> None:
    raw = dev(enclaveImageSizeMib=4000)
    raw["collaboration"]["workload"]["hosts"][0]["instanceType"] = "m6i.2xlarge"
    assert parse(raw, REVIEW_DEPLOYMENT).aws.enclave_image_size_mib == 4000
    raw["collaboration"]["workload"]["hosts"][0]["instanceType"] = "c6i.2xlarge"  # 16 GiB: too small again
    assert [p.split(":", 2)[:2] for p in problems(raw)] == [["ccp-aws", "enclaveImageSizeMib"]]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "ccp-aws:enclaveImageSizeMib: 0 is invalid: Input should be greater than or equal to 1"),
        ("big", "ccp-aws:enclaveImageSizeMib: 'big' is invalid: Input should be a valid integer"),
        (True, "ccp-aws:enclaveImageSizeMib: True is invalid: Input should be a valid integer"),
    ],
)
def test_bad_values_are_refused(value: Any, expected: str) -> None:
    assert problems(dev(enclaveImageSizeMib=value)) == [expected]


def test_unknown_key_is_refused_on_the_review_path(tmp_path: Path) -> None:
    for name in ("Pulumi.yaml", "__main__.py"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    stack["config"]["ccp-aws:enclaveImageSizeMB"] = 2048
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump(stack))
    with pytest.raises(ConfigError) as caught:
        ccp_settings(project.load(tmp_path, "dev"))
    assert caught.value.problems == [
        "ccp-aws:enclaveImageSizeMB: unknown key (value 2048); check its spelling (keys are camelCase)"
    ]


def test_unknown_key_is_refused_on_the_pulumi_up_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """`stacks.config.load` reads the engine's config (PULUMI_CONFIG) through `_runtime_config`."""
    from pulumi.runtime import config as runtime

    from stacks.config import _runtime_config

    texts = {key: json.dumps(value) if not isinstance(value, str) else value
             for key, value in yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"].items()}
    texts["ccp-aws:enclaveImageSize"] = "2048"
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(texts))
    token = runtime.CONFIG.set({})  # only what the engine hands over (no config set by another test)
    try:
        with pytest.raises(ConfigError) as caught:
            validate(from_config_texts(_runtime_config()))
    finally:
        runtime.CONFIG.reset(token)
    assert caught.value.problems == [
        "ccp-aws:enclaveImageSize: unknown key (value 2048); check its spelling (keys are camelCase)"
    ]
    texts["ccp-aws:enclaveImageSizeMib"] = texts.pop("ccp-aws:enclaveImageSize")
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(texts))
    token = runtime.CONFIG.set({})
    try:
        assert validate(from_config_texts(_runtime_config())).aws.enclave_image_size_mib == 2048
    finally:
        runtime.CONFIG.reset(token)


def test_the_site_sizes_enclave_hosts_and_eks_from_the_image() -> None:
    import base64

    from components.aws.site import Site
    from policies.review.mocks import run, unwrap
    from tests.support import stack_site_args

    raw = dev(enclaveImageSizeMib=2000)
    recording = run(lambda: Site("dev-demo-aws", stack_site_args(raw, "aws")))
    (host,) = [r for r in recording.of_type("aws:ec2/launchTemplate:LaunchTemplate")]
    user_data = base64.b64decode(unwrap(host.properties)["userData"]).decode()
    assert f"memory_mib: {enclave_memory_mib(2000)}\n" in user_data and enclave_memory_mib(2000) == 8192
    raw["collaboration"]["workload"]["hosts"][0]["kubernetes"] = True
    recording = run(lambda: Site("dev-demo-aws", stack_site_args(raw, "aws")))
    # the query service's, Flower's SuperLink and clinic-aws's SuperNode (dev declares `federated`): each pod
    # is given the enclave's hugepages
    pods = [unwrap(d.properties)["spec"]["template"]["spec"] for d in recording.of_type("kubernetes:apps/v1:Deployment")]
    assert [pod["containers"][0]["resources"]["limits"]["hugepages-2Mi"] for pod in pods] == ["8192Mi"] * 3
