"""Local stand-ins of the cloud key services (development infrastructure, never in an image).

Each stand-in is a loopback HTTP(S) server that speaks enough of one service's real REST API for the
official SDK to be its client, verifies evidence with `enclave_runtime.attest`, derives the claims as
the real service documents them, and decides with the same evaluators the review's simulation uses
(`policies.review.key_release.{aws,azure,gcp}`) over the policies the stack generated (`stack.py`).
"""
