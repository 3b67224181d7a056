"""ccp-zero-trust: the CrossGuard policy pack for confidential collaborations (see pack.py)."""
