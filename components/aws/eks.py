"""EKS option for an AWS workload host: private control plane, enclave-enabled nodes, device plugin.

- Control plane: private endpoint only (`endpointPublicAccess=false`), Kubernetes secrets envelope-
  encrypted with a customer-managed key, all control-plane log types on (log group KMS-encrypted).
  A private endpoint means `pulumi up` must run from inside the VPC (or a peered network).
- Nodes: a managed node group from the same enclave-enabled launch template helper as plain hosts
  (IMDSv2 with hop limit 2 because pods sit one hop further, no public IP, encrypted volumes), user
  data in MIME form (EKS merges its own bootstrap), allocator configured, node label
  `aws-nitro-enclaves-k8s-dp=enabled`.
- The AWS Nitro Enclaves Kubernetes device plugin DaemonSet (upstream manifest
  https://github.com/aws/aws-nitro-enclaves-k8s-device-plugin, image tag from its Helm values),
  through an explicit Kubernetes provider whose kubeconfig is built from the cluster's outputs.
  Pods request `aws.ec2.nitro/nitro_enclaves: 1` and `hugepages-2Mi` (reserved by the allocator):
  `query_placement` is where the attested query service's replicas run (`components.kubernetes`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws.common import Account, child, short_name, to_json
from components.aws.enclave_host import (
    LaunchTemplateSpec,
    bootstrap_script,
    enclave_launch_template,
    enclave_resources,
    mime_user_data,
)
from components.aws.instance_types import architecture
from components.aws.keys import (
    ServiceKey,
    ServiceKeyArgs,
    admin_statement,
    via_service_grant_statement,
    via_service_statement,
)
from components.key_purpose import CLUSTER_SECRETS
from components.kubernetes.query_service import Placement

KUBERNETES_VERSION: Final = "1.33"
CONTROL_PLANE_LOGS: Final[tuple[str, ...]] = ("api", "audit", "authenticator", "controllerManager", "scheduler")
DEVICE_PLUGIN_IMAGE: Final = "public.ecr.aws/aws-nitro-enclaves/aws-nitro-enclaves-k8s-device-plugin:v0.3"
DEVICE_PLUGIN_LABEL: Final = "aws-nitro-enclaves-k8s-dp"
ENCLAVE_RESOURCE: Final = "aws.ec2.nitro/nitro_enclaves"
AMI_TYPES: Final[dict[str, str]] = {"x86_64": "AL2023_x86_64_STANDARD", "arm64": "AL2023_ARM_64_STANDARD"}


def kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that authenticates with `aws eks get-token` (no static credentials)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": cluster_name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
            "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
            "current-context": cluster_name,
            "users": [
                {
                    "name": cluster_name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region],
                        }
                    },
                }
            ],
        }
    )


def device_plugin_spec() -> dict[str, Any]:
    """The upstream DaemonSet's pod spec, image pinned, least privilege kept."""
    return {
        "nodeSelector": {DEVICE_PLUGIN_LABEL: "enabled"},
        "priorityClassName": "system-node-critical",
        "hostname": DEVICE_PLUGIN_LABEL,
        "containers": [
            {
                "name": DEVICE_PLUGIN_LABEL,
                "image": DEVICE_PLUGIN_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                "resources": {
                    "limits": {"cpu": "100m", "memory": "15Mi"},
                    "requests": {"cpu": "10m", "memory": "15Mi"},
                },
                "volumeMounts": [
                    {"name": "device-plugin", "mountPath": "/var/lib/kubelet/device-plugins"},
                    {"name": "dev-dir", "mountPath": "/dev"},
                    {"name": "sys-dir", "mountPath": "/sys"},
                ],
            }
        ],
        "volumes": [
            {"name": "device-plugin", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}},
            {"name": "dev-dir", "hostPath": {"path": "/dev"}},
            {"name": "sys-dir", "hostPath": {"path": "/sys"}},
        ],
        "terminationGracePeriodSeconds": 30,
    }


def query_placement(enclave_memory_mib: int) -> Placement:
    """The enclave nodes (the device plugin's label), one enclave device per pod and the hugepages the
    allocator reserved for it, behind an internal NLB that passes TCP through (no TLS listener: TLS
    ends inside the enclave)."""
    return Placement(
        node_selector={DEVICE_PLUGIN_LABEL: "enabled"},
        resources={ENCLAVE_RESOURCE: "1", "hugepages-2Mi": f"{enclave_memory_mib}Mi"},
        service_annotations={
            "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
            "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
            "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
        },
    )


@dataclass(frozen=True)
class EksClusterArgs:
    cluster_name: str
    region: str
    account: Account
    subnet_ids: list[pulumi.Input[str]]
    workload_security_group_id: pulumi.Input[str]
    node_role_arn: str
    instance_type: str
    ebs_kms_key_arn: pulumi.Input[str]
    log_kms_key_arn: pulumi.Input[str]
    log_retention_days: int
    tags: dict[str, str]
    enclave_cpu_count: int | None = None
    # Allocator memory (and each pod's hugepages): `enclave_memory_mib(ccp-aws:enclaveImageSizeMib)` from the site.
    enclave_memory_mib: int = 4096
    node_count: int = 2


class EksCluster(pulumi.ComponentResource):
    cluster: aws.eks.Cluster
    node_group: aws.eks.NodeGroup
    provider: k8s.Provider

    def __init__(self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None):
        cpus, memory = enclave_resources(args.instance_type, args.enclave_cpu_count, args.enclave_memory_mib)
        super().__init__("ccp:aws:EksCluster", name, None, opts)
        self.query_placement = query_placement(memory)
        account, region = args.account, args.region
        role_name = short_name(args.cluster_name, "control-plane", limit=64)
        role_arn = account.role_arn(role_name)
        cluster_role = aws.iam.Role(
            f"{name}-control-plane",
            name=role_name,
            assume_role_policy=to_json(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "eks.amazonaws.com"},
                            "Action": ["sts:AssumeRole", "sts:TagSession"],
                            "Condition": {"StringEquals": {"aws:SourceAccount": account.account_id}},
                        }
                    ],
                }
            ),
            tags=args.tags,
            opts=child(self),
        )
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-control-plane",
            role=cluster_role.name,
            policy_arn=f"arn:{account.partition}:iam::aws:policy/AmazonEKSClusterPolicy",
            opts=child(self),
        )
        secrets_key = ServiceKey(
            f"{name}-secrets",
            ServiceKeyArgs(
                region=region,
                description=f"ccp EKS secrets envelope key of {args.cluster_name}",
                purpose=CLUSTER_SECRETS,
                policy={
                    "Version": "2012-10-17",
                    "Statement": [
                        admin_statement(account),
                        # The control plane envelope-encrypts secrets through EKS only (kms:ViaService).
                        via_service_statement(
                            "EksControlPlaneEnvelope", [role_arn], "eks", region, account,
                            actions=("kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"),
                        ),
                        via_service_grant_statement("EksControlPlaneGrants", [role_arn], "eks", region, account),
                    ],
                },
                tags=args.tags,
            ),
            opts=child(self, depends_on=[cluster_role]),
        )
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs",
            name=f"/aws/eks/{args.cluster_name}/cluster",  # the group EKS writes to
            region=region,
            kms_key_id=args.log_kms_key_arn,
            retention_in_days=args.log_retention_days,
            tags=args.tags,
            opts=child(self),
        )
        self.cluster = aws.eks.Cluster(
            name,
            name=args.cluster_name,
            region=region,
            version=KUBERNETES_VERSION,
            role_arn=cluster_role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=args.subnet_ids,
                security_group_ids=[args.workload_security_group_id],
                endpoint_private_access=True,
                endpoint_public_access=False,
            ),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                resources=["secrets"],
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=secrets_key.key.arn),
            ),
            enabled_cluster_log_types=list(CONTROL_PLANE_LOGS),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API", bootstrap_cluster_creator_admin_permissions=True
            ),
            tags=args.tags,
            opts=child(self, depends_on=[attachment, log_group]),
        )
        launch_template = enclave_launch_template(
            f"{name}-nodes",
            LaunchTemplateSpec(
                region=region,
                instance_type=args.instance_type,
                ebs_kms_key_arn=args.ebs_kms_key_arn,
                user_data=mime_user_data(bootstrap_script(cpus, memory, mount_data_volume=False)),
                tags=args.tags,
                network_interface_security_groups=[
                    self.cluster.vpc_config.cluster_security_group_id,
                    args.workload_security_group_id,
                ],
                hop_limit=2,
                data_volume_gib=None,
            ),
            self,
        )
        self.node_group = aws.eks.NodeGroup(
            f"{name}-enclave-nodes",
            cluster_name=self.cluster.name,
            region=region,
            node_role_arn=args.node_role_arn,
            subnet_ids=args.subnet_ids,
            ami_type=AMI_TYPES[architecture(args.instance_type)],
            capacity_type="ON_DEMAND",
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=launch_template.id, version=launch_template.latest_version.apply(str)
            ),
            labels={DEVICE_PLUGIN_LABEL: "enabled"},
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                desired_size=args.node_count, min_size=1, max_size=max(args.node_count, 1) * 2
            ),
            tags=args.tags,
            opts=child(self),
        )
        ca_data = self.cluster.certificate_authority.apply(lambda ca: ca.data if ca else "")
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(self.cluster.name, self.cluster.endpoint, ca_data).apply(
                lambda v: kubeconfig(v[0], v[1], v[2], region)
            )
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=child(self, depends_on=[self.node_group]),
        )
        k8s_opts = child(self, provider=self.provider)
        k8s.apps.v1.DaemonSet(
            f"{name}-nitro-enclaves-device-plugin",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="aws-nitro-enclaves-k8s-daemonset",
                namespace="kube-system",
                labels={"name": DEVICE_PLUGIN_LABEL, "role": "agent"},
            ),
            spec={
                "selector": {"matchLabels": {"name": DEVICE_PLUGIN_LABEL}},
                "updateStrategy": {"type": "RollingUpdate"},
                "template": {"metadata": {"labels": {"name": DEVICE_PLUGIN_LABEL}}, "spec": device_plugin_spec()},
            },
            opts=k8s_opts,
        )
        self.register_outputs({"clusterName": self.cluster.name, "nodeGroup": self.node_group.id})
