"""Image files as the models see them: the one rule that turns any Pillow mode into 8-bit RGB, or refuses it.

Every image read from disk goes through `open_rgb`: the training and test loaders (and so their worker
processes, the class-mean and linear-probe initialisation and the feature statistics), and --verify-images.

- The 8-bit modes the references read with `Image.open(path).convert("RGB")` (RGB, L, P, RGBA, CMYK, YCbCr, 1,
  LA, PA, RGBX) keep exactly the pixels of that call: their numbers must not change.
- A palette image with a transparent colour goes through RGBA, as Pillow recommends (the colours are those
  of `convert("RGB")`; only Pillow's warning goes).
- 16-bit greyscale (I;16, I;16L, I;16B, I;16N, and I from PNG and PGM, whose 16-bit greyscale Pillow reads as
  I in 0..65535) keeps its high byte, value >> 8: the 8 bits Pillow itself keeps of a 16-bit RGB, RGBA or LA
  PNG. `convert("RGB")` would clip every value above 255 to white.
- Every other mode is refused, naming it: integer I of unknown range (32-bit or signed 16-bit TIFF), float F,
  LAB, HSV and the premultiplied modes have no single right mapping to 8-bit RGB.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CONVERTED = frozenset({"RGB", "L", "P", "RGBA", "CMYK", "YCbCr", "1", "LA", "PA", "RGBX"})
SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
SIXTEEN_BIT_AS_I = frozenset({"PNG", "PPM"})  # formats whose mode-I images are 16-bit greyscale, 0..65535


class ImageModeError(ValueError):
    """An image mode with no known 8-bit RGB meaning; the message names the mode and the fix."""


def _high_byte(image: Image.Image) -> Image.Image:
    """A 16-bit greyscale image (values 0..65535) as RGB of its high bytes."""
    return Image.fromarray((np.asarray(image) >> 8).astype(np.uint8)).convert("RGB")


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` (loaded) as 8-bit RGB by the rule of this module; ImageModeError for a mode it refuses."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P" and "transparency" in image.info:
        return image.convert("RGBA").convert("RGB")
    if mode in CONVERTED:
        return image.convert("RGB")
    if mode in SIXTEEN_BIT or (mode == "I" and image.format in SIXTEEN_BIT_AS_I):
        return _high_byte(image)
    kind = {"I": "32-bit integer pixels of unknown range", "F": "floating-point pixels of unknown range"}.get(
        mode, "no single 8-bit RGB reading")
    raise ImageModeError(f"Pillow mode {mode} ({image.format or 'unknown format'}): {kind}; save it as 8-bit RGB "
                         f"or 8/16-bit greyscale, scaled as its source defines its values")


def open_rgb(path: str | Path, draft: tuple[int, int] | None = None) -> Image.Image:
    """The decoded RGB image at `path`. With `draft`, a JPEG decodes at the smallest scale of at least that size
    (the checks only need every byte read, not every pixel). Pillow's errors pass through for the caller to name
    the file; ImageModeError for a mode `to_rgb` refuses."""
    with Image.open(path) as image:
        if draft is not None and image.format == "JPEG":
            image.draft("RGB", draft)
        image.load()  # decoded now, while the file is open
        return to_rgb(image)
