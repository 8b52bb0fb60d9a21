"""The vocabulary of image jobs, free of Pillow so that subinterpreters can import it."""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

type ParamValue = int | float


class OpKind(StrEnum):
    # Pillow's C code, which releases the GIL for most operations.
    NATIVE = "native"
    # Per-pixel loops in Python, which hold the GIL the whole time.
    PURE_PYTHON = "pure_python"


class InvalidStepError(ValueError):
    """A pipeline step names an unknown operation or a parameter outside its bounds."""

    def __init__(self, op: str, message: str, parameter: str | None = None) -> None:
        self.op = op
        self.parameter = parameter
        where = f"{op}.{parameter}" if parameter else op
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    type: type[int] | type[float]
    minimum: ParamValue
    maximum: ParamValue
    default: ParamValue
    description: str


@dataclass(frozen=True, slots=True)
class Step:
    op: str
    params: Mapping[str, ParamValue] = field(default_factory=dict)


def steps_from_json(pipeline: Iterable[Mapping[str, Any]]) -> tuple[Step, ...]:
    """A pipeline as JSON holds it, `[{"op": "box_blur", "params": {"radius": 2}}, ...]`
    (params optional), as steps; unchecked (`images.validate_steps` checks them)."""
    return tuple(Step(step["op"], dict(step.get("params", {}))) for step in pipeline)


def steps_to_json(steps: Iterable[Step]) -> list[dict[str, Any]]:
    """Steps as JSON holds them: what `steps_from_json` reads back."""
    return [{"op": step.op, "params": dict(step.params)} for step in steps]


@dataclass(frozen=True, slots=True)
class Pixels:
    """An RGB image as raw bytes, row-major: what crosses into a subinterpreter."""

    width: int
    height: int
    data: bytes

    def __post_init__(self) -> None:
        if len(self.data) != self.width * self.height * 3:
            raise ValueError(
                f"{self.width}x{self.height} RGB needs {self.width * self.height * 3} bytes, "
                f"got {len(self.data)}"
            )


@dataclass(frozen=True, slots=True)
class Operation[Input]:
    name: str
    kind: OpKind
    description: str
    parameters: tuple[Parameter, ...]
    apply: Callable[[Input, Mapping[str, ParamValue]], Input]

    def resolve(self, params: Mapping[str, object]) -> dict[str, ParamValue]:
        """The step's parameters with defaults filled in, or InvalidStepError naming the culprit."""
        known = {parameter.name for parameter in self.parameters}
        for name in params:
            if name not in known:
                expected = ", ".join(sorted(known)) or "none"
                raise InvalidStepError(self.name, f"unknown parameter (expected: {expected})", name)
        resolved: dict[str, ParamValue] = {}
        for parameter in self.parameters:
            value = params.get(parameter.name, parameter.default)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidStepError(
                    self.name, f"must be a number, got {value!r}", parameter.name
                )
            if parameter.type is int and value != int(value):
                raise InvalidStepError(
                    self.name, f"must be a whole number, got {value!r}", parameter.name
                )
            if not parameter.minimum <= value <= parameter.maximum:
                raise InvalidStepError(
                    self.name,
                    f"must be between {parameter.minimum} and {parameter.maximum}, got {value!r}",
                    parameter.name,
                )
            resolved[parameter.name] = parameter.type(value)
        return resolved
