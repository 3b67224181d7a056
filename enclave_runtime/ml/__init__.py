"""Privacy-preserving computation inside the TEEs: federated learning with SecAgg+ (`fl`), differential
privacy with an enforced budget (`dp`), HE inference (`he`) and MPC statistics (`mpc`).

Its own environment (enclave_runtime/ml/requirements.lock, `make test-ml`): flwr needs protobuf 6, which
the IaC side's Pulumi SDK cannot share. Submodules are imported on use, so verifying evidence never loads
Flower, OpenDP, TenSEAL or MPyC. See README.md beside this file for what each part guarantees.
"""
