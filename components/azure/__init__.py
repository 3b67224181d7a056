"""Azure site: confidential VMs / SGX VMs / AKS, Azure Attestation, Key Vault secure key release,
customer-key storage, private networking and monitoring, declared with pulumi-azure-native.

Entry point: `components.azure.site.Site`.
"""
