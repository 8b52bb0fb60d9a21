"""Pure-Python operations on raw RGB pixels: every byte passes through the interpreter.

Integer arithmetic only, so the output is the same bytes on every runner and GIL mode.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nogil_bench.workloads.model import Operation, OpKind, Parameter, ParamValue, Pixels, Step


def _blur_line(values: Sequence[int], radius: int) -> bytes:
    """Mean over a (2*radius+1) window with a running sum; edges repeat the border value."""
    window = 2 * radius + 1
    padded = [values[0]] * radius + list(values) + [values[-1]] * radius
    total = sum(padded[:window])
    out = bytearray(len(values))
    half = window // 2
    for i in range(len(values)):
        out[i] = (total + half) // window
        if i + window < len(padded):
            total += padded[i + window] - padded[i]
    return bytes(out)


def box_blur(pixels: Pixels, params: Mapping[str, ParamValue]) -> Pixels:
    radius = int(params["radius"])
    width, height, row_bytes = pixels.width, pixels.height, pixels.width * 3
    rows = bytearray(pixels.data)
    for y in range(height):
        start = y * row_bytes
        for channel in range(3):
            line = slice(start + channel, start + row_bytes, 3)
            rows[line] = _blur_line(rows[line], radius)
    columns = bytearray(rows)
    for x in range(width):
        for channel in range(3):
            line = slice(x * 3 + channel, None, row_bytes)
            columns[line] = _blur_line(columns[line], radius)
    return Pixels(width, height, bytes(columns))


# Sepia weights, in thousandths, per output channel (R, G, B) and input channel.
SEPIA_WEIGHTS = ((393, 769, 189), (349, 686, 168), (272, 534, 131))


def sepia(pixels: Pixels, params: Mapping[str, ParamValue]) -> Pixels:
    strength = int(params["strength_pct"])
    keep = 100 - strength
    # Locals, not literals, in the hot loop: on a free-threaded build every thread loading an
    # imported module's non-immortal int constants contends on their refcounts (1.35x -> 2x).
    (rr, rg, rb), (gr, gg, gb), (br, bg, bb) = SEPIA_WEIGHTS
    scale, top = 1000, 255
    data = pixels.data
    out = bytearray(len(data))
    for i in range(0, len(data), 3):
        r, g, b = data[i], data[i + 1], data[i + 2]
        red = (r * keep + (r * rr + g * rg + b * rb) // scale * strength) // 100
        green = (g * keep + (r * gr + g * gg + b * gb) // scale * strength) // 100
        blue = (b * keep + (r * br + g * bg + b * bb) // scale * strength) // 100
        out[i] = red if red < top else top
        out[i + 1] = green if green < top else top
        out[i + 2] = blue if blue < top else top
    return Pixels(pixels.width, pixels.height, bytes(out))


def invert(pixels: Pixels, params: Mapping[str, ParamValue]) -> Pixels:
    return Pixels(pixels.width, pixels.height, bytes(255 - value for value in pixels.data))


PURE_OPERATIONS: dict[str, Operation[Pixels]] = {
    op.name: op
    for op in (
        Operation(
            "box_blur",
            OpKind.PURE_PYTHON,
            "Mean of the (2r+1)x(2r+1) neighbourhood, computed in Python.",
            (Parameter("radius", int, 1, 16, 2, "Half-width of the window, in pixels."),),
            box_blur,
        ),
        Operation(
            "sepia",
            OpKind.PURE_PYTHON,
            "Sepia colour transform, pixel by pixel in Python.",
            (Parameter("strength_pct", int, 0, 100, 100, "0 keeps colours, 100 full sepia."),),
            sepia,
        ),
        Operation(
            "invert",
            OpKind.PURE_PYTHON,
            "Photographic negative, byte by byte in Python.",
            (),
            invert,
        ),
    )
}


@dataclass(frozen=True, slots=True)
class PixelTask:
    """Pure-Python steps to run on decoded pixels: a job's share that a subinterpreter can do."""

    pixels: Pixels
    steps: tuple[Step, ...]


def run_pure_steps(task: PixelTask) -> Pixels:
    pixels = task.pixels
    for step in task.steps:
        pixels = PURE_OPERATIONS[step.op].apply(pixels, step.params)
    return pixels
