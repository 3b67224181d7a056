"""A plain pulumi-aws/pulumi-gcp program with one party key per cloud, for "who can reach this key".

GCP: a data key released to a Confidential Space image digest (workload identity pool whose provider
pins the digest); `extraHolder` adds a human decrypter on the key. AWS: a data key for an attested
enclave role with a break-glass admin in an MFA session, and no CloudWatch alarm on its admin events.
"""

import json

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp

config = pulumi.Config()
DIGEST = "sha256:" + "ab" * 32
PCR0 = "cd" * 48
ring = gcp.kms.KeyRing("ring", name="holders", location="europe-west3", project="holders-project")
key = gcp.kms.CryptoKey(
    "gcp-data", name="gcp-data", key_ring="projects/holders-project/locations/europe-west3/keyRings/holders",
    labels={"party": "alpha", "ccp-key-purpose": "party-data"},
)
gcp.iam.WorkloadIdentityPoolProvider(
    "provider", project="holders-project", workload_identity_pool_id="holders",
    workload_identity_pool_provider_id="cs",
    attribute_condition=f"assertion.swname == 'CONFIDENTIAL_SPACE' && assertion.submods.container.image_digest == '{DIGEST}'",
    attribute_mapping={"google.subject": "assertion.sub", "attribute.image_digest": "assertion.submods.container.image_digest"},
    oidc={"issuer_uri": "https://confidentialcomputing.googleapis.com/", "allowed_audiences": ["https://sts.googleapis.com"]},
)
KEY_ID = "projects/holders-project/locations/europe-west3/keyRings/holders/cryptoKeys/gcp-data"
gcp.kms.CryptoKeyIAMMember(
    "workload", crypto_key_id=KEY_ID, role="roles/cloudkms.cryptoKeyDecrypter",
    member=f"principalSet://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/holders/attribute.image_digest/{DIGEST}",
)
if config.get_bool("extraHolder"):
    gcp.kms.CryptoKeyIAMMember(
        "ops", crypto_key_id=KEY_ID, role="roles/cloudkms.cryptoKeyDecrypter", member="user:ops@example.com",
    )

ENCLAVE = "arn:aws:iam::111122223333:role/enclave"
BREAK_GLASS = "arn:aws:iam::111122223333:role/break-glass"
aws.kms.Key(
    "aws-data", tags={"party": "beta", "ccp-key-purpose": "party-data"},
    policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "AllowDecryptByAttestedEnclave", "Effect": "Allow", "Principal": {"AWS": ENCLAVE},
         "Action": ["kms:Decrypt"], "Resource": "*",
         "Condition": {"StringEqualsIgnoreCase": {"kms:RecipientAttestation:ImageSha384": PCR0}}},
        {"Sid": "DenyDecryptWithoutAttestation", "Effect": "Deny", "Principal": "*", "Action": ["kms:Decrypt"],
         "Resource": "*", "Condition": {"Null": {"kms:RecipientAttestation:ImageSha384": "true"}}},
        {"Sid": "KeyAdministration", "Effect": "Allow", "Principal": {"AWS": BREAK_GLASS},
         "Action": ["kms:PutKeyPolicy", "kms:DescribeKey"], "Resource": "*",
         "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}},
        {"Sid": "DenyPolicyChangeExceptBreakGlass", "Effect": "Deny", "Principal": "*",
         "Action": ["kms:PutKeyPolicy", "kms:CreateGrant"], "Resource": "*",
         "Condition": {"ArnNotEquals": {"aws:PrincipalArn": BREAK_GLASS}}},
    ]}),
)
