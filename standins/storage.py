"""Party storage for the demo: each AWS party's data bucket, as recorded, in moto's S3 server.

The sealed datasets travel as they would in a deployment: the party's owner uploads them to its own
bucket with boto3, and the workload streams them back (`get_object` body straight into
`enclave_runtime.seal.open_sealed`, never a whole file in memory). moto's server mode speaks the S3 REST
API, so the official client is used unchanged. What moto does not model here: the bucket policy and
SSE-KMS with the party's storage key (the recorded policies are judged by the review, not enforced by
moto).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, BinaryIO, Iterator

import boto3
import requests
from moto.server import ThreadedMotoServer

from policies.review.mocks import Recording, unwrapped

# moto accepts any credentials; these name no real account.
_CREDENTIALS = {"aws_access_key_id": "AKIADEMOSTORAGE00000", "aws_secret_access_key": "demo"}


def party_bucket(recording: Recording, party: str) -> tuple[str, str]:
    """(bucket name, region) of `party`'s data bucket as the program declared it."""
    for resource in recording.of_type("aws:s3/bucket:Bucket"):
        props = unwrapped(resource)
        if (props.get("tags") or {}).get("party") == party and resource.name.endswith("-storage-data"):
            name = props.get("bucket") or resource.outputs.get("bucket")
            region = str(props.get("region") or resource.outputs.get("region") or "eu-west-1")
            if isinstance(name, str):
                return name, region
    raise LookupError(f"the recording declares no data bucket for party {party!r} (aws:s3/bucket:Bucket *-storage-data)")


class S3StandIn:
    """moto's S3 server on a free loopback port, with the recorded party buckets created."""

    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request lines in the demo's output
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        # moto's backends are per process, not per server: start every stand-in empty.
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()

    def client(self, region: str) -> Any:
        return boto3.session.Session(**_CREDENTIALS).client("s3", endpoint_url=self.url, region_name=region)

    def create_bucket(self, name: str, region: str) -> None:
        self.client(region).create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})

    def upload(self, bucket: str, region: str, key: str, source: BinaryIO) -> None:
        self.client(region).upload_fileobj(source, bucket, key)

    @contextlib.contextmanager
    def stream(self, bucket: str, region: str, key: str) -> Iterator[BinaryIO]:
        body = self.client(region).get_object(Bucket=bucket, Key=key)["Body"]
        try:
            yield body
        finally:
            body.close()

    def stop(self) -> None:
        self._server.stop()
