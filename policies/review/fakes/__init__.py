"""Plausible cloud answers for the recording mocks, one module per provider.

Each module exports `INVOKES` (invoke token -> function of the invoke's args returning its result,
camelCase keys) and `outputs(type, name, inputs, id)` (the computed outputs a real provider would
add: ARNs, resource ids, URIs).

An invoke is answered, in this order, by the program's answers file (ANSWERS_FILE), a hand-written
fake (where a value's meaning matters: regions, zones, account ids, project numbers, AMIs, policy
documents), else by placeholders of the shape of the provider SDK's result type (`schema.py`), which
are recorded (`placeholder_invokes`) and listed in the report. An invoke with none of these (an
unknown token, no typed result class) fails loudly, naming the function and the answers file, rather
than returning nothing, so a missing answer cannot silently change what a program declares.
"""

from __future__ import annotations

from typing import Any, Callable

from . import aws, azure, gcp, kubernetes, schema  # relative: shipped into programs' environments too

_MODULES = {"aws": aws, "azure-native": azure, "gcp": gcp, "kubernetes": kubernetes}
_INVOKES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    token: answer for module in _MODULES.values() for token, answer in module.INVOKES.items()
}


# Answers a program gives for itself (ANSWERS_FILE beside its Pulumi.yaml): token -> result.
ANSWERS_FILE = "ccp-review-invokes.json"
_PROGRAM_ANSWERS: dict[str, dict[str, Any]] = {}


# Invokes answered by schema placeholders in this run: token -> {function, result_type, count}.
_PLACEHOLDERS: dict[str, dict[str, Any]] = {}


class UnansweredInvoke(Exception):
    pass


def reset_placeholders() -> None:
    _PLACEHOLDERS.clear()


def placeholder_invokes() -> list[dict[str, Any]]:
    """The invokes this run answered with schema placeholders, by token: [{token, function, result_type, count}]."""
    return [{"token": token, **entry} for token, entry in sorted(_PLACEHOLDERS.items())]


def add_answers(answers: dict[str, dict[str, Any]]) -> None:
    """Fixed results for invokes, from the program's ANSWERS_FILE; they take precedence over the fakes."""
    _PROGRAM_ANSWERS.update(answers)


def _package(type_: str) -> str:
    if type_.startswith("pulumi:providers:"):
        return type_.removeprefix("pulumi:providers:")
    return type_.split(":", 1)[0]


def cloud_outputs(
    type_: str, name: str, inputs: dict[str, Any], resource_id: str, account: str | None = None
) -> dict[str, Any]:
    """`account`: the AWS account of the resource's explicit provider (`fakes.aws.provider_account`)."""
    module = _MODULES.get(_package(type_))
    if module is None or type_.startswith("pulumi:providers:"):
        return {}
    if module is aws:
        return aws.outputs(type_, name, inputs, resource_id, account)
    return module.outputs(type_, name, inputs, resource_id)


def invoke_answer(token: str, args: dict[str, Any]) -> dict[str, Any]:
    if token in _PROGRAM_ANSWERS:
        return dict(_PROGRAM_ANSWERS[token])
    answer = _INVOKES.get(token)
    if answer is not None:
        return answer(args)
    generic = schema.answer(token)
    if generic is not None:
        function, result_type, result = generic
        entry = _PLACEHOLDERS.setdefault(token, {"function": function, "result_type": result_type, "count": 0})
        entry["count"] += 1
        return result
    module = {"azure-native": "azure"}.get(_package(token), _package(token))
    path = schema.function_path(token)
    function = f"{path[0]}.{path[1]}" if path else token
    raise UnansweredInvoke(
        f"the offline review has no answer for invoke {token!r} (function {function}: the program's "
        f"environment has no typed result class for it to answer from); give this program's answer in "
        f"{ANSWERS_FILE} beside its Pulumi.yaml ({{\"{token}\": {{...result...}}}}), or add one to "
        f"policies/review/fakes/{module}.py"
    )
