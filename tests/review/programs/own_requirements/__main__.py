"""Random names for a deployment, in the style of Pulumi's random-provider examples."""

import pulumi
import pulumi_random as random

config = pulumi.Config()
words = config.get_int("words") or 2

pet = random.RandomPet("service-name", length=words, separator="-")
suffix = random.RandomString("suffix", length=6, special=False, upper=False)
password = random.RandomPassword("db-password", length=24, special=True, override_special="_%@")

pulumi.export("serviceName", pet.id)
pulumi.export("suffix", suffix.result)
pulumi.export("password", password.result)
