"""Zero-trust rules by cloud/topic; `_base` holds the one helper they are all built with."""
