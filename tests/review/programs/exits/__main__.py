"""Stops early when a feature flag is off: fine for `pulumi up`, not for a review that must see everything."""

import sys

import pulumi

if not pulumi.Config().get_bool("enabled"):
    print("nothing to deploy")
    sys.exit(0)
