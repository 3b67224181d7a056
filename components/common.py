"""What every cloud's components share: child-resource options and length-bounded names.

One shape for all three clouds, so a rule or a review walking the resource tree sees the same parenting
everywhere, and a long name is shortened the same way (prefix plus a stable hash) wherever a provider
limits name length.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pulumi


def child(parent: pulumi.Resource, *depends_on: pulumi.Resource, **kwargs: Any) -> pulumi.ResourceOptions:
    """Options for a component's child: always parented (the review walks the tree); `depends_on` may
    be given positionally or as a keyword (both are kept)."""
    dependencies = [*depends_on, *kwargs.pop("depends_on", [])]
    return pulumi.ResourceOptions(parent=parent, depends_on=dependencies or None, **kwargs)


def bounded(name: str, limit: int, *, digest_chars: int = 8) -> str:
    """`name` if it fits in `limit` characters, else a prefix, '-' and a stable `digest_chars`-hex hash
    of the whole name, so shortened names stay unique and deterministic."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:digest_chars]
    return f"{name[: limit - digest_chars - 1].rstrip('-')}-{digest}"
