"""What the service answers: a model (inference) and the collaboration's declared query outputs.

`Model` is the seam for the ML issue: anything with these attributes and `predict` can be served.
The service validates request shapes against `features` and `max_rows` before calling `predict`, so a
model only ever sees well-formed, bounded input. A model whose `predict` blocks (large, native code)
sets `blocking = True` and runs in a worker thread under a time limit; a cheap one (the linear model,
microseconds) runs inline, because a thread hop would cost more than the prediction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class Model(Protocol):
    name: str
    version: str
    features: int  # numbers per input row
    max_rows: int  # rows per request: bounds the work one request can ask for
    blocking: bool

    def predict(self, rows: Sequence[Sequence[float]]) -> list[float]: ...

    def describe(self) -> dict[str, Any]: ...


class ModelError(ValueError):
    """A model file the service cannot load; the message names the field and the fix."""


@dataclass(frozen=True)
class LinearModel:
    """y = w·x + b: the placeholder model until the ML issue trains a real one inside the TEE."""

    weights: tuple[float, ...]
    bias: float = 0.0
    name: str = "demo-linear"
    version: str = "1"
    max_rows: int = 256
    blocking: bool = False

    @property
    def features(self) -> int:
        return len(self.weights)

    def predict(self, rows: Sequence[Sequence[float]]) -> list[float]:
        w, b = self.weights, self.bias
        return [sum(x * y for x, y in zip(row, w)) + b for row in rows]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "kind": "linear", "features": self.features,
                "maxRows": self.max_rows}


DEMO_MODEL = LinearModel(weights=(0.42, -1.5, 2.0, 0.125), bias=0.5)


def load_model(path: Path) -> LinearModel:
    """A model file: `{"kind": "linear", "weights": [..], "bias": n, "name"?, "version"?, "maxRows"?}`."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ModelError(f"--model {path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise ModelError(f"--model {path}: not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != "linear":
        raise ModelError(f"--model {path}: expected an object with \"kind\": \"linear\" (the only kind served so far)")
    weights = data.get("weights")
    if not isinstance(weights, list) or not weights or not all(_number(w) for w in weights):
        raise ModelError(f"--model {path}: weights must be a non-empty list of finite numbers, got {weights!r}")
    bias = data.get("bias", 0.0)
    if not _number(bias):
        raise ModelError(f"--model {path}: bias must be a finite number, got {bias!r}")
    max_rows = data.get("maxRows", 256)
    if not isinstance(max_rows, int) or isinstance(max_rows, bool) or not 1 <= max_rows <= 10_000:
        raise ModelError(f"--model {path}: maxRows must be an integer 1..10000, got {max_rows!r}")
    return LinearModel(
        weights=tuple(float(w) for w in weights), bias=float(bias), name=str(data.get("name", path.stem)),
        version=str(data.get("version", "1")), max_rows=max_rows,
    )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Outputs:
    """The declared query outputs (name -> JSON value), e.g. the demo's joint result.

    Only what the collaboration declared as an output is ever served; nothing else in the TEE is reachable.
    """

    values: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_files(cls, specs: Sequence[str]) -> "Outputs":
        """`NAME=FILE.json` pairs (the CLI's `--output`)."""
        values: dict[str, Any] = {}
        for spec in specs:
            name, sep, file = spec.partition("=")
            if not sep or not name or not file:
                raise ModelError(f"--output {spec!r}: expected NAME=FILE.json (e.g. joint=out/joint.json)")
            try:
                values[name] = json.loads(Path(file).read_text())
            except OSError as exc:
                raise ModelError(f"--output {spec!r}: cannot read {file}: {exc.strerror}") from None
            except ValueError as exc:
                raise ModelError(f"--output {spec!r}: {file} is not JSON: {exc}") from None
        return cls(values)
