"""What the components run inside the Kubernetes clusters they declare (`kubernetes: true` hosts)."""
