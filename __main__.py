"""Pulumi entry point (`pulumi up` from the repository root runs this file)."""

from stacks.program import main

main()
