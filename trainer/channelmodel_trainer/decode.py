"""Turn image bytes into the model's input: Teachable Machine's preprocessing
(EXIF orientation applied, RGB, centre square crop, 224x224), as uint8 pixels.
The `x/127 - 1` scaling happens inside the embedding graph.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from channelmodel_trainer.base_model import IMAGE_SIZE

# Far above any phone camera (48 MP) and below what would exhaust memory when decoded.
DEFAULT_MAX_PIXELS = 64_000_000
# Only JPEG decodes scaled down (draft mode); PNG, WebP, GIF... decode at full size
# first: 64 MP of PNG took 735 MiB. 16 MP (a 4000x4000 image) keeps two decode
# threads under ~0.5 GiB and still admits every common phone photo as PNG (12 MP).
DEFAULT_MAX_FULL_DECODE_PIXELS = 16_000_000
_DRAFT_FORMATS = frozenset({"JPEG"})


class DecodeError(Exception):
    """Not a usable image; the message is a short reason."""


def open_upright(
    data: bytes,
    *,
    min_side: int = IMAGE_SIZE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_full_decode_pixels: int = DEFAULT_MAX_FULL_DECODE_PIXELS,
) -> Image.Image:
    """The verified image, upright, in RGB; JPEGs scaled down while decoding to >= `min_side`.

    Formats decoded at full size first have the lower `max_full_decode_pixels` budget.
    """
    try:
        with warnings.catch_warnings():
            # Our own pixel limit applies; Pillow's warning below its hard limit is noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
                limit = (
                    max_pixels
                    if probe.format in _DRAFT_FORMATS
                    else min(max_pixels, max_full_decode_pixels)
                )
                if width * height > limit:
                    raise DecodeError(f"{width}x{height} pixels is over the {limit} limit")
                probe.verify()
            with Image.open(io.BytesIO(data)) as image:
                # JPEG: libjpeg's DCT scaling, never below the size asked for.
                image.draft("RGB", (min_side, min_side))
                upright = ImageOps.exif_transpose(image)
                return upright.convert("RGB")
    except DecodeError:
        raise
    except Image.DecompressionBombError:
        raise DecodeError("decompression bomb") from None
    except UnidentifiedImageError:
        raise DecodeError("not an image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Truncated or corrupt data: Pillow raises these from verify() and load().
        raise DecodeError(f"corrupt image: {str(exc)[:80]}") from None


def centre_square(image: Image.Image, size: int = IMAGE_SIZE) -> np.ndarray:
    """(size, size, 3) uint8 pixels of the centre square, as TM's cropTo."""
    square = ImageOps.fit(image, (size, size), method=Image.Resampling.BILINEAR)
    return np.asarray(square, dtype=np.uint8)


def decode_image(
    data: bytes, *, size: int = IMAGE_SIZE, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """(size, size, 3) uint8 pixels of the centre square of the image."""
    return centre_square(open_upright(data, min_side=size, max_pixels=max_pixels), size)
