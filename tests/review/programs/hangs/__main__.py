"""Waits for something that never comes (a lock, a prompt, a server): the review must stop it."""

import time

import pulumi_aws as aws

aws.s3.Bucket("before-the-wait")
while True:
    time.sleep(1)
