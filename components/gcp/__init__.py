"""GCP components of ccp: `Site` and the parts it is made of (type tokens `ccp:gcp:<Name>`)."""
