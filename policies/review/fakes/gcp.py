"""GCP answers: project ccp-mock-project (number 123456789012), ids and self links as the APIs return them.

Data sources answered (stand-ins, deterministic): organizations getProject / getClientConfig
(ccp-mock-project, europe-west4), compute getZones (`<region>-a..c`), getImage (`<family>-v20240101`),
getNetwork / getSubnetwork (`default`, 10.164.0.0/20), getDefaultServiceAccount, storage
getProjectServiceAccount.
"""

from __future__ import annotations

from typing import Any

PROJECT = "ccp-mock-project"
PROJECT_NUMBER = "123456789012"
DEFAULT_REGION = "europe-west4"
_API = "https://www.googleapis.com/compute/v1"


def _specific(type_: str, project: str, resource_name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs whose shape other resources consume (KMS key ids, service account emails, ...)."""
    if type_ == "gcp:kms/keyRing:KeyRing":
        location = inputs.get("location", DEFAULT_REGION)
        key_ring = f"projects/{project}/locations/{location}/keyRings/{resource_name}"
        return {"id": key_ring, "selfLink": key_ring}
    if type_ == "gcp:kms/cryptoKey:CryptoKey":
        key = f"{inputs.get('keyRing', f'projects/{project}/locations/{DEFAULT_REGION}/keyRings/ring')}/cryptoKeys/{resource_name}"
        return {"id": key, "selfLink": key}
    if type_ == "gcp:serviceaccount/account:Account":
        email = f"{inputs.get('accountId', resource_name)}@{project}.iam.gserviceaccount.com"
        return {"email": email, "member": f"serviceAccount:{email}", "uniqueId": "100000000000000000001"}
    if type_ == "gcp:storage/bucket:Bucket":
        return {
            "id": resource_name,
            "url": f"gs://{resource_name}",
            "selfLink": f"https://www.googleapis.com/storage/v1/b/{resource_name}",
        }
    if type_ == "gcp:iam/workloadIdentityPool:WorkloadIdentityPool":
        pool = f"projects/{PROJECT_NUMBER}/locations/global/workloadIdentityPools/{inputs.get('workloadIdentityPoolId')}"
        return {"id": pool, "name": pool, "state": "ACTIVE"}
    if type_ == "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider":
        provider = (
            f"projects/{PROJECT_NUMBER}/locations/global/workloadIdentityPools/"
            f"{inputs.get('workloadIdentityPoolId')}/providers/{inputs.get('workloadIdentityPoolProviderId')}"
        )
        return {"id": provider, "name": provider, "state": "ACTIVE"}
    if type_.startswith("gcp:compute/"):
        kind = type_.split(":")[-1]
        where = (
            f"zones/{inputs['zone']}"
            if "zone" in inputs
            else f"regions/{inputs['region']}"
            if "region" in inputs
            else "global"
        )
        collection = kind[0].lower() + kind[1:] + "s"
        link = f"{_API}/projects/{project}/{where}/{collection}/{resource_name}"
        return {"selfLink": link, "selfLinkUnique": f"{link}?uniqueId=1"}
    return {}


def outputs(type_: str, name: str, inputs: dict[str, Any], resource_id: str) -> dict[str, Any]:
    project = inputs.get("project", PROJECT)
    resource_name = inputs.get("name") or name
    out = {
        "id": f"projects/{project}/{type_.split(':')[-1].lower()}s/{resource_name}",
        "name": resource_name,
        "project": project,
        "selfLink": f"https://www.googleapis.com/ccp-mock/v1/projects/{project}/{resource_name}",
    }
    out.update(_specific(type_, project, resource_name, inputs))
    return out


INVOKES: dict[str, Any] = {
    "gcp:organizations/getProject:getProject": lambda args: {
        "projectId": args.get("projectId") or PROJECT,
        "number": PROJECT_NUMBER,
        "name": args.get("projectId") or PROJECT,
        "id": f"projects/{args.get('projectId') or PROJECT}",
    },
    "gcp:organizations/getClientConfig:getClientConfig": lambda args: {
        "project": PROJECT,
        "region": DEFAULT_REGION,
        "zone": f"{DEFAULT_REGION}-a",
        "accessToken": "mock",
        "id": PROJECT,
    },
    # The Cloud Storage service agent of a project (needs the key's encrypter/decrypter role for CMEK).
    "gcp:storage/getProjectServiceAccount:getProjectServiceAccount": lambda args: {
        "emailAddress": f"service-{PROJECT_NUMBER}@gs-project-accounts.iam.gserviceaccount.com",
        "member": f"serviceAccount:service-{PROJECT_NUMBER}@gs-project-accounts.iam.gserviceaccount.com",
        "project": args.get("project") or PROJECT,
        "id": args.get("project") or PROJECT,
    },
    "gcp:compute/getZones:getZones": lambda args: {
        "names": [f"{args.get('region') or DEFAULT_REGION}-{z}" for z in ("a", "b", "c")],
        "project": args.get("project") or PROJECT,
        "region": args.get("region") or DEFAULT_REGION,
        "id": args.get("project") or PROJECT,
    },
}


# --- Common data sources (stand-ins: deterministic, derived from the invoke's arguments) ----------


def _image(args: dict[str, Any]) -> dict[str, Any]:
    """The newest image of `family` (named `<family>-v20240101`), or the image `name` asked for."""
    project = args.get("project") or PROJECT
    family = args.get("family") or ""
    name = args.get("name") or (f"{family}-v20240101" if family else "stand-in-image-v20240101")
    link = f"{_API}/projects/{project}/global/images/{name}"
    return {
        "id": f"projects/{project}/global/images/{name}", "name": name, "family": family, "project": project,
        "selfLink": link, "status": "READY", "diskSizeGb": 10, "archiveSizeBytes": 0, "imageId": "1000000000000000001",
        "creationTimestamp": "2024-01-01T00:00:00.000-00:00", "description": "review stand-in image",
        "labels": {}, "labelFingerprint": "42WmSpB8rSM=", "licenses": [], "sourceDisk": "", "sourceImageId": "",
        "sourceDiskId": "", "sourceImage": "", "sourceDiskEncryptionKeySha256": "", "sourceImageEncryptionKeySha256": "",
        "imageEncryptionKeySha256": "", "filter": args.get("filter"), "mostRecent": args.get("mostRecent"),
    }


def _network(args: dict[str, Any]) -> dict[str, Any]:
    project = args.get("project") or PROJECT
    name = args.get("name") or "default"
    return {
        "id": f"projects/{project}/global/networks/{name}", "name": name, "project": project,
        "selfLink": f"{_API}/projects/{project}/global/networks/{name}", "gatewayIpv4": "",
        "description": "", "subnetworksSelfLinks": [], "networkId": "1000000000000000002",
        "internalIpv6Range": "",
    }


def _subnetwork(args: dict[str, Any]) -> dict[str, Any]:
    project = args.get("project") or PROJECT
    region = args.get("region") or DEFAULT_REGION
    name = args.get("name") or "default"
    return {
        "id": f"projects/{project}/regions/{region}/subnetworks/{name}", "name": name, "project": project,
        "region": region, "ipCidrRange": "10.164.0.0/20", "gatewayAddress": "10.164.0.1",
        "network": f"{_API}/projects/{project}/global/networks/default", "privateIpGoogleAccess": True,
        "selfLink": f"{_API}/projects/{project}/regions/{region}/subnetworks/{name}", "secondaryIpRanges": [],
        "description": "", "subnetworkId": 1000000000000000003,
    }


INVOKES.update({
    "gcp:compute/getImage:getImage": _image,
    "gcp:compute/getNetwork:getNetwork": _network,
    "gcp:compute/getSubnetwork:getSubnetwork": _subnetwork,
    "gcp:compute/getDefaultServiceAccount:getDefaultServiceAccount": lambda args: {
        "email": f"{PROJECT_NUMBER}-compute@developer.gserviceaccount.com",
        "member": f"serviceAccount:{PROJECT_NUMBER}-compute@developer.gserviceaccount.com",
        "name": f"projects/{args.get('project') or PROJECT}/serviceAccounts/{PROJECT_NUMBER}-compute@developer.gserviceaccount.com",
        "project": args.get("project") or PROJECT, "uniqueId": "100000000000000000002", "displayName": "Compute Engine default service account",
        "id": f"projects/{args.get('project') or PROJECT}/serviceAccounts/{PROJECT_NUMBER}-compute@developer.gserviceaccount.com",
    },
})
