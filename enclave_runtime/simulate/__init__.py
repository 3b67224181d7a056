"""A simulated TEE for dev and CI: evidence in the vendors' exact formats, signed under a local root.

Nothing here is trusted by default: a verifier accepts simulated evidence only when the simulation root
is passed explicitly (`TrustStore(simulation_roots=[...])`, CLI `--trust-simulation-root`), and it
then reports the `simulation` anchor, which a production policy refuses.
"""
