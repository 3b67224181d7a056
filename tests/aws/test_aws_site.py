"""`Site` built from the AWS slice of Pulumi.dev.yaml: what it declares, and what it refuses."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from components.aws.eks import DEVICE_PLUGIN_IMAGE, ENCLAVE_RESOURCE
from components.aws.site import Site
from components.site import SiteArgs
from policies.review.mocks import run, unwrap

from tests.support import read_stack, stack_site_args


def site_args(raw: dict[str, Any]) -> SiteArgs:
    return stack_site_args(raw, "aws")


def test_dev_site_declares_the_aws_slice() -> None:
    sites: list[Site] = []
    recording = run(lambda: sites.append(Site("dev-demo-aws", site_args(read_stack()))))
    counts = Counter(r.type for r in recording.resources)
    assert counts["ccp:aws:Site"] == 1
    assert counts["ccp:aws:Network"] == 1
    assert counts["ccp:aws:Audit"] == 1
    assert counts["ccp:aws:EnclaveHost"] == 1  # one aws/nitro host, not kubernetes
    assert counts["ccp:aws:EksCluster"] == 0
    assert counts["ccp:aws:PartyDataKey"] == 1  # one AWS party: clinic-aws
    assert counts["ccp:aws:PartyStorage"] == 1
    assert counts["aws:ec2/instance:Instance"] == 1
    assert counts["aws:cloudtrail/trail:Trail"] == 1
    assert counts["aws:kms/key:Key"] == 5  # data, storage, audit, EBS, enclave image (EIF)
    assert counts["aws:s3/bucket:Bucket"] == 4  # party data, its access logs, trail, enclave images
    assert counts["aws:ec2/vpcEndpoint:VpcEndpoint"] == 7
    site = sites[0]
    assert list(site.keys) == ["clinic-aws"]
    assert site.enclave_role_arn == "arn:aws:iam::111122223333:role/ccp-dev-demo-dev-enclave"


def test_kubernetes_host_builds_an_eks_cluster_instead() -> None:
    raw = read_stack()
    raw["collaboration"]["workload"]["hosts"][0]["kubernetes"] = True
    recording = run(lambda: Site("dev-demo-aws", site_args(raw)))
    assert not recording.of_type("aws:ec2/instance:Instance")
    cluster = unwrap(recording.one("aws:eks/cluster:Cluster").properties)
    assert cluster["vpcConfig"]["endpointPrivateAccess"] is True
    assert cluster["vpcConfig"]["endpointPublicAccess"] is False
    assert cluster["encryptionConfig"]["resources"] == ["secrets"]
    assert cluster["encryptionConfig"]["provider"]["keyArn"].startswith("arn:aws:kms:eu-west-1:")
    assert cluster["enabledClusterLogTypes"] == ["api", "audit", "authenticator", "controllerManager", "scheduler"]
    assert cluster["region"] == "eu-west-1"
    template = unwrap(recording.one("aws:ec2/launchTemplate:LaunchTemplate").properties)
    assert template["enclaveOptions"] == {"enabled": True}
    assert template["metadataOptions"]["httpTokens"] == "required"
    assert template["metadataOptions"]["httpPutResponseHopLimit"] == 2
    assert template["networkInterfaces"][0]["associatePublicIpAddress"] == "false"
    nodes = unwrap(recording.one("aws:eks/nodeGroup:NodeGroup").properties)
    assert nodes["labels"] == {"aws-nitro-enclaves-k8s-dp": "enabled"}
    assert nodes["nodeRoleArn"] == "arn:aws:iam::111122223333:role/ccp-dev-demo-dev-enclave"
    assert nodes["launchTemplate"]["version"] == "1"
    provider = recording.one("pulumi:providers:kubernetes")
    kubeconfig = json.loads(unwrap(provider.properties)["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"].startswith("https://")
    assert kubeconfig["users"][0]["user"]["exec"]["args"][:2] == ["eks", "get-token"]
    daemonset = recording.one("kubernetes:apps/v1:DaemonSet")
    assert daemonset.provider and daemonset.provider.startswith(provider.urn)
    spec = unwrap(daemonset.properties)["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == DEVICE_PLUGIN_IMAGE
    assert spec["nodeSelector"] == {"aws-nitro-enclaves-k8s-dp": "enabled"}
    assert ENCLAVE_RESOURCE == "aws.ec2.nitro/nitro_enclaves"
    endpoints = {unwrap(e.properties)["serviceName"] for e in recording.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert "com.amazonaws.eu-west-1.ecr.dkr" in endpoints and "com.amazonaws.eu-west-1.eks" in endpoints

