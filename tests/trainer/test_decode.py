"""Image decoding: Teachable Machine's preprocessing and refusal of bad data."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from channelmodel_trainer.decode import DecodeError, decode_image
from tests.trainer.trainer_testlib import jpeg_bytes


def encode(image: Image.Image, fmt: str = "PNG", **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def test_centre_square_crop_to_224() -> None:
    # Left third red, middle third green, right third blue: the crop keeps the middle.
    image = Image.new("RGB", (300, 100), (255, 0, 0))
    image.paste((0, 255, 0), (100, 0, 200, 100))
    image.paste((0, 0, 255), (200, 0, 300, 100))

    pixels = decode_image(encode(image))

    assert pixels.shape == (224, 224, 3)
    assert pixels.dtype == np.uint8
    assert pixels[112, 112].tolist() == [0, 255, 0]
    assert pixels[112, 5].tolist() == [0, 255, 0]


def test_exif_orientation_is_applied() -> None:
    # Stored landscape, red on the left; EXIF 6 says "rotate 90 clockwise to view".
    image = Image.new("RGB", (200, 100), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 100, 100))
    exif = Image.Exif()
    exif[0x0112] = 6
    pixels = decode_image(encode(image, "JPEG", exif=exif, quality=95), size=20)
    # Viewed upright it is portrait; the centre square shows the seam across it, red on top.
    top, bottom = pixels[2, 10], pixels[17, 10]
    assert (top[0] > 200, top[2] < 60) == (True, True)
    assert (bottom[2] > 200, bottom[0] < 60) == (True, True)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_any_mode_becomes_rgb(mode: str) -> None:
    image = Image.new(mode, (50, 50))
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    assert decode_image(encode(image, fmt)).shape == (224, 224, 3)


def test_text_is_not_an_image() -> None:
    with pytest.raises(DecodeError, match="not an image"):
        decode_image(b"<html>this is not a photo</html>")


def test_truncated_jpeg_is_refused() -> None:
    data = jpeg_bytes(size=(400, 300))
    with pytest.raises(DecodeError, match="corrupt image"):
        decode_image(data[: len(data) // 2])


def test_corrupt_png_fails_verification() -> None:
    data = bytearray(encode(Image.new("RGB", (40, 40), (1, 2, 3))))
    data[60] ^= 0xFF  # inside IDAT: the CRC no longer matches
    with pytest.raises(DecodeError):
        decode_image(bytes(data))


def test_pixel_limit_refuses_decompression_bombs_before_decoding() -> None:
    # 5000x5000 of one colour compresses to a few kB but is 25 M pixels.
    bomb = encode(Image.new("L", (5000, 5000)), "PNG", optimize=True)
    assert len(bomb) < 100_000
    with pytest.raises(DecodeError, match="5000x5000 pixels is over the 1000000 limit"):
        decode_image(bomb, max_pixels=1_000_000)


def test_pillow_hard_limit_is_reported_as_a_bomb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DecodeError, match="decompression bomb"):
        decode_image(encode(Image.new("L", (100, 100))), max_pixels=10**9)
