"""GCP answers: project ccp-dev (number 123456789012), self links as the APIs return them."""

from __future__ import annotations

from typing import Any

PROJECT = "ccp-mock-project"
PROJECT_NUMBER = "123456789012"


def outputs(type_: str, name: str, inputs: dict[str, Any], resource_id: str) -> dict[str, Any]:
    project = inputs.get("project", PROJECT)
    resource_name = inputs.get("name") or name
    return {
        "id": f"projects/{project}/{type_.split(':')[-1].lower()}s/{resource_name}",
        "name": resource_name,
        "project": project,
        "selfLink": f"https://www.googleapis.com/ccp-mock/v1/projects/{project}/{resource_name}",
    }


INVOKES: dict[str, Any] = {
    "gcp:organizations/getProject:getProject": lambda args: {
        "projectId": args.get("projectId") or PROJECT,
        "number": PROJECT_NUMBER,
        "name": args.get("projectId") or PROJECT,
        "id": f"projects/{args.get('projectId') or PROJECT}",
    },
    "gcp:organizations/getClientConfig:getClientConfig": lambda args: {
        "project": PROJECT,
        "region": "europe-west4",
        "zone": "europe-west4-a",
        "accessToken": "mock",
        "id": PROJECT,
    },
}
