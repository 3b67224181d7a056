"""Program-local settings module, named `config` as many Pulumi examples name theirs."""

import pulumi

_stack = pulumi.Config()
TEAM = _stack.get("team") or "unknown"
TAGS = {"team": TEAM, "stack": pulumi.get_stack(), "source": "local-config-module"}
