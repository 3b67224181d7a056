"""AWS-only settings that are not part of the collaboration model (Pulumi config namespace `ccp-aws`, a
typed section of the one stack config model: `stacks.config.StackConfig.aws`). Components never read
Pulumi config themselves: the AWS site gets these as `SiteArgs.options`.

- `enclaveImageSizeMib`: the size of the enclave image file (EIF) the build produced, in MiB rounded up
  (`make measurements` prints it; `ls -l --block-size=M out/images/nitro/enclave.eif`). `nitro-cli
  run-enclave` needs enclave memory of at least 4x the image
  (https://docs.aws.amazon.com/enclaves/latest/user/cmd-nitro-run-enclave.html), so the Nitro
  Enclaves allocator of every enclave host and EKS node reserves `enclave_memory_mib(size)` (4x,
  rounded up to 256 MiB), and each EKS pod requests that much as hugepages. Default 1024 (4096 MiB
  reserved). A size whose enclave memory does not fit the host's instance type (its memory less what
  the parent keeps) is refused by `components.aws.checks` at this key.

Validated by `stacks.config.parse` with the rest of the config (unknown keys refused).
"""

from __future__ import annotations

from typing import Final

from pydantic import Field

from enclave_runtime.measurements import Model

NAMESPACE: Final = "ccp-aws"
# The EIF size ccp plans for when the stack declares none: the enclave_runtime image with its wheels
# (images/nitro/Dockerfile) builds to well under 1 GiB; a larger image must declare its size.
DEFAULT_EIF_SIZE_MIB: Final = 1024
# A bound on the field alone (the instance check is tighter): larger than any EIF a workload needs.
MAX_EIF_SIZE_MIB: Final = 262144


class AwsOptions(Model):
    """The `ccp-aws` section of the stack config; every default is the one the example stacks use."""

    enclave_image_size_mib: int = Field(default=DEFAULT_EIF_SIZE_MIB, ge=1, le=MAX_EIF_SIZE_MIB, strict=True)
