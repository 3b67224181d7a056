"""Only on `pulumi up`: a seeding step that must not run during a preview (or a review)."""

import pulumi
import pulumi_aws as aws


def seed(table: aws.dynamodb.Table) -> None:
    """Writes the first item into the live table: impossible (and wrong) before the table exists."""
    raise RuntimeError("apply-only step ran: it writes to the live table and must never run in a review")


table = aws.dynamodb.Table(
    "items", billing_mode="PAY_PER_REQUEST", hash_key="id",
    attributes=[aws.dynamodb.TableAttributeArgs(name="id", type="S")],
    server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(enabled=True),
)

if not pulumi.runtime.is_dry_run():
    seed(table)
    aws.dynamodb.TableItem("seed", table_name=table.name, hash_key="id", item='{"id": {"S": "seed"}}')
