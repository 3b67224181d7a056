"""The runtime baked into the workload images: evidence, verification, policy, (next) key release.

Small on purpose: it imports no Pulumi and no cloud SDK, and `requirements.txt` beside this file is its
whole dependency list. The IaC imports `enclave_runtime.measurements` from here, so the key policies
and the runtime's validation read one typed set of approved measurements.
"""
