"""In-TEE runtime (evidence, attestation-bound key release, approved workloads, audit log).

Not built yet: no open issue covers it. The infrastructure in `components/` does not depend on it.
"""
