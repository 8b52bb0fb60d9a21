"""Operations run by Pillow's C code, which releases the GIL for most of them."""

from collections.abc import Mapping

from PIL import Image, ImageFilter

from nogil_bench.workloads.model import Operation, OpKind, Parameter, ParamValue


def resize(image: Image.Image, params: Mapping[str, ParamValue]) -> Image.Image:
    size = (int(params["width"]), int(params["height"]))
    return image.resize(size, Image.Resampling.LANCZOS)


def rotate(image: Image.Image, params: Mapping[str, ParamValue]) -> Image.Image:
    return image.rotate(float(params["degrees"]), Image.Resampling.BICUBIC, expand=False)


def grayscale(image: Image.Image, params: Mapping[str, ParamValue]) -> Image.Image:
    # Back to RGB so every later step sees the same mode.
    return image.convert("L").convert("RGB")


def gaussian_blur(image: Image.Image, params: Mapping[str, ParamValue]) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(float(params["radius"])))


def sharpen(image: Image.Image, params: Mapping[str, ParamValue]) -> Image.Image:
    return image.filter(
        ImageFilter.UnsharpMask(float(params["radius"]), int(params["percent"]), threshold=3)
    )


def edge_detect(image: Image.Image, params: Mapping[str, ParamValue]) -> Image.Image:
    return image.filter(ImageFilter.FIND_EDGES)


NATIVE_OPERATIONS: dict[str, Operation[Image.Image]] = {
    op.name: op
    for op in (
        Operation(
            "resize",
            OpKind.NATIVE,
            "Lanczos resampling to an exact size.",
            (
                Parameter("width", int, 1, 8192, 256, "Output width, in pixels."),
                Parameter("height", int, 1, 8192, 256, "Output height, in pixels."),
            ),
            resize,
        ),
        Operation(
            "rotate",
            OpKind.NATIVE,
            "Bicubic rotation about the centre, same canvas size.",
            (Parameter("degrees", float, -360, 360, 90, "Counter-clockwise angle."),),
            rotate,
        ),
        Operation("grayscale", OpKind.NATIVE, "Luma (ITU-R 601-2) grayscale.", (), grayscale),
        Operation(
            "gaussian_blur",
            OpKind.NATIVE,
            "Gaussian blur.",
            (Parameter("radius", float, 0.1, 50, 2, "Standard deviation, in pixels."),),
            gaussian_blur,
        ),
        Operation(
            "sharpen",
            OpKind.NATIVE,
            "Unsharp mask.",
            (
                Parameter("radius", float, 0.1, 50, 2, "Blur radius of the mask, in pixels."),
                Parameter("percent", int, 1, 500, 150, "Strength, in percent."),
            ),
            sharpen,
        ),
        Operation("edge_detect", OpKind.NATIVE, "3x3 edge-finding kernel.", (), edge_detect),
    )
}
