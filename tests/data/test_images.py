import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from bench.data import DataError, LongTailData, check_images
from bench.data.base import FileImages
from bench.data.images import ImageModeError, open_rgb

RNG = np.random.default_rng(0)
SIXTEEN_BIT = np.array([[0, 255, 256, 0x1234, 0x80FF, 0xFFFF]], dtype=np.uint16)
HIGH_BYTES = [0, 0, 1, 0x12, 0x80, 0xFF]  # what SIXTEEN_BIT must read as


def _noise(channels: int) -> np.ndarray:
    return RNG.integers(0, 256, (6, 5, channels) if channels > 1 else (6, 5), dtype=np.uint8)


def _eight_bit(mode: str) -> Image.Image:
    """A random image in `mode`, built from its raw bytes."""
    if mode == "1":
        return Image.fromarray(_noise(1)).convert("1")
    if mode == "P":
        return Image.fromarray(_noise(3)).quantize(16)
    return Image.frombytes(mode, (5, 6), _noise(len(mode) if mode != "YCbCr" else 3).tobytes())


def png_16bit(values: np.ndarray, colour_type: int) -> bytes:
    """A 16-bit PNG written by hand (Pillow writes 16-bit greyscale only): colour type 0 grey, 2 RGB."""
    height, width = values.shape[:2]
    raw = b"".join(b"\0" + values[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("mode, suffix", [("RGB", "png"), ("L", "png"), ("P", "png"), ("RGBA", "png"), ("LA", "png"),
                                          ("1", "png"), ("CMYK", "tiff"), ("CMYK", "jpg"), ("YCbCr", "tiff"),
                                          ("RGB", "jpg"), ("L", "bmp")])
def test_eight_bit_modes_read_as_the_references_read_them(tmp_path, mode, suffix):
    path = tmp_path / f"image.{suffix}"
    _eight_bit(mode).save(path)
    with Image.open(path) as image:
        assert image.mode == mode  # the file really is in that mode
        reference = np.asarray(image.convert("RGB"))  # LIFT / LIFT+: Image.open(path).convert("RGB")
    ours = open_rgb(path)
    assert ours.mode == "RGB" and np.array_equal(np.asarray(ours), reference)
    assert len(np.unique(reference)) > 1


def test_palette_with_transparency_goes_through_rgba_with_the_same_colours(tmp_path):
    image = _eight_bit("P")
    alpha = bytes([255, 255, 0, 128] + [255] * 12)  # colour 2 transparent, colour 3 half
    image.info["transparency"] = alpha
    image.save(tmp_path / "t.png")
    with Image.open(tmp_path / "t.png") as reopened:
        assert reopened.mode == "P" and reopened.info["transparency"] == alpha
        via_rgba = np.asarray(reopened.convert("RGBA").convert("RGB"))
        with pytest.warns(UserWarning, match="should be converted to RGBA"):
            direct = np.asarray(reopened.convert("RGB"))  # the references' call
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = np.asarray(open_rgb(tmp_path / "t.png"))
    assert np.array_equal(ours, via_rgba) and np.array_equal(ours, direct)


@pytest.mark.parametrize("mode, suffix", [("I;16", "png"), ("I;16", "tiff"), ("I;16B", "tiff"), ("I;16", "pgm")])
def test_sixteen_bit_greyscale_keeps_the_high_byte(tmp_path, mode, suffix):
    path = tmp_path / f"deep.{suffix}"
    Image.frombytes(mode, (6, 1), SIXTEEN_BIT.astype(">u2" if mode == "I;16B" else "<u2").tobytes()).save(path)
    with Image.open(path) as image:
        opened_as = image.mode  # a PGM opens as I, 0..65535
        assert np.asarray(image.convert("RGB"))[0, 1:, 0].tolist() == [255] * 5  # what convert("RGB") gave: white
    pixels = np.asarray(open_rgb(path))
    assert opened_as in {"I;16", "I;16B", "I"}
    assert pixels[0, :, 0].tolist() == HIGH_BYTES and (pixels == pixels[..., :1]).all()


def test_sixteen_bit_grey_reads_as_pillow_reads_sixteen_bit_rgb(tmp_path):
    (tmp_path / "grey.png").write_bytes(png_16bit(SIXTEEN_BIT, 0))
    (tmp_path / "rgb.png").write_bytes(png_16bit(np.repeat(SIXTEEN_BIT[..., None], 3, axis=2), 2))
    assert np.array_equal(np.asarray(open_rgb(tmp_path / "grey.png")), np.asarray(open_rgb(tmp_path / "rgb.png")))


def refused_image(mode: str) -> Image.Image:
    """An image in a mode open_rgb refuses: 32-bit integers, floats (both of unknown range) or CIELab."""
    if mode == "LAB":
        return Image.new("LAB", (4, 4), (50, 10, 200))
    return Image.fromarray(np.array([[0, 70000, -3]], dtype=np.int32) if mode == "I" else
                           np.array([[0.0, 0.5, 1.0]], dtype=np.float32))


@pytest.mark.parametrize("mode, problem", [("I", "32-bit integer pixels of unknown range"),
                                           ("F", "floating-point pixels of unknown range"),
                                           ("LAB", "no single 8-bit RGB reading")])
def test_modes_without_an_rgb_reading_are_refused(tmp_path, mode, problem):
    refused_image(mode).save(tmp_path / "odd.tiff")
    with Image.open(tmp_path / "odd.tiff") as image:
        assert image.mode == mode
    with pytest.raises(ImageModeError, match=rf"^Pillow mode {mode} \(TIFF\): {problem}; save it as 8-bit RGB"):
        open_rgb(tmp_path / "odd.tiff")


def _listed(tmp_path, name: str) -> FileImages:
    return FileImages(tmp_path, [name], np.array([0]), tmp_path / "train.txt", [7])


def test_loading_a_refused_mode_names_the_file_line_and_mode(tmp_path):
    refused_image("F").save(tmp_path / "x.tiff")
    with pytest.raises(DataError, match=r"x\.tiff \(listed in .*train\.txt, line 7\).*Pillow mode F"):
        _listed(tmp_path, "x.tiff").load(0)


def test_verify_images_refuses_a_refused_mode_and_reads_sixteen_bit(tmp_path):
    Image.frombytes("I;16", (6, 1), SIXTEEN_BIT.tobytes()).save(tmp_path / "deep.png")
    refused_image("F").save(tmp_path / "x.tiff")
    fine = LongTailData("modes", ["a"], _listed(tmp_path, "deep.png"), _listed(tmp_path, "deep.png"))
    check_images(fine, decode=True)
    bad = LongTailData("modes", ["a"], _listed(tmp_path, "deep.png"), _listed(tmp_path, "x.tiff"))
    check_images(bad)  # without decoding, the mode is not looked at
    with pytest.raises(DataError, match=r"image mode without an 8-bit RGB reading: .*x\.tiff \(listed in .*line 7\)"
                                        r": Pillow mode F.*Save them as 8-bit RGB"):
        check_images(bad, decode=True)
