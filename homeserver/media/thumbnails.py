"""Thumbnails with Pillow: pure geometry, and a blocking renderer run in a worker thread.

Methods (spec, "Thumbnails"): `scale` keeps the aspect ratio and fits the
requested box, one side touching it; `crop` fills the requested box exactly
and cuts off what overflows, centred. Never upscaled: a source that already
fits the box is returned at its own size (as is, when its format is the
thumbnail's), and a crop larger than the source in one direction is cut to
the source there.

Output: JPEG for JPEG sources, PNG for the other still images; with
`animated=true`, an animated GIF or WebP gives an animated WebP.

Untrusted input: the pixel count is checked from the header before anything
is decoded (decompression bombs), Pillow's own bomb warning is an error, and
animated sources are decoded frame by frame under a frame and pixel budget.
"""

from __future__ import annotations

import math
import shutil
import warnings
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from homeserver.errors import MatrixError, too_large

# Per frame. Synapse's default `max_image_pixels` is 32 M.
MAX_PIXELS = 32_000_000
# Every decoded frame of an animated source together.
MAX_ANIMATED_PIXELS = 200_000_000
MAX_FRAMES = 300

JPEG, PNG, GIF, WEBP = "image/jpeg", "image/png", "image/gif", "image/webp"
THUMBNAILABLE = frozenset({JPEG, PNG, GIF, WEBP})
_ANIMATABLE = frozenset({GIF, WEBP})
_FORMATS = {JPEG: ("JPEG", "jpg"), PNG: ("PNG", "png"), WEBP: ("WEBP", "webp")}


class Method(StrEnum):
    SCALE = "scale"
    CROP = "crop"


@dataclass(frozen=True, slots=True)
class ThumbnailSpec:
    width: int
    height: int
    method: Method
    animated: bool

    def output_type(self, source_type: str) -> str:
        """The thumbnail's content type, which depends on the source's type only."""
        if self.animates(source_type):
            return WEBP
        return JPEG if source_type == JPEG else PNG

    def animates(self, source_type: str) -> bool:
        # `animated=true` on media that cannot animate behaves as false (spec 1.11).
        return self.animated and source_type in _ANIMATABLE

    def file_name(self, source_type: str) -> str:
        """The cache file's name: same request, same source type -> same file."""
        suffix = "-animated" if self.animates(source_type) else ""
        extension = _FORMATS[self.output_type(source_type)][1]
        return f"{self.width}x{self.height}-{self.method.value}{suffix}.{extension}"


@dataclass(frozen=True, slots=True)
class Geometry:
    """Resize the source to `size`, then keep `crop` (left, top, right, bottom) if given."""

    size: tuple[int, int]
    crop: tuple[int, int, int, int] | None = None

    def unchanged(self, source: tuple[int, int]) -> bool:
        return self.size == source and self.crop is None


def geometry(source: tuple[int, int], width: int, height: int, method: Method) -> Geometry:
    src_w, src_h = source
    if src_w <= width and src_h <= height:
        return Geometry(source)  # never upscale
    if method is Method.SCALE:
        factor = min(width / src_w, height / src_h)
        return Geometry((max(1, round(src_w * factor)), max(1, round(src_h * factor))))
    factor = max(width / src_w, height / src_h)
    if factor >= 1:
        # Smaller than the box in one direction: cut the other, scale nothing.
        size, box_w, box_h = source, min(width, src_w), min(height, src_h)
    else:
        size = (min(src_w, math.ceil(src_w * factor)), min(src_h, math.ceil(src_h * factor)))
        box_w, box_h = width, height
    left, top = (size[0] - box_w) // 2, (size[1] - box_h) // 2
    return Geometry(size, (left, top, left + box_w, top + box_h))


def _cannot_thumbnail() -> MatrixError:
    return MatrixError(400, "M_UNKNOWN", "Cannot generate thumbnails for the requested content")


def _content_too_large() -> MatrixError:
    return too_large("Content is too large to thumbnail")


def _apply(image: Image.Image, plan: Geometry) -> Image.Image:
    if image.size != plan.size:
        image = image.resize(plan.size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if plan.crop is not None:
        image = image.crop(plan.crop)
    return image


def _still(image: Image.Image, output_type: str) -> Image.Image:
    if output_type == JPEG:
        return image if image.mode in ("RGB", "L") else image.convert("RGB")
    if image.mode in ("RGB", "RGBA", "L", "LA"):
        return image
    return image.convert("RGBA")


def render(source: Path, source_type: str, spec: ThumbnailSpec, destination: Path) -> None:
    """Write the thumbnail of `source` to `destination` (blocking: run it in a thread).

    Raises MatrixError: 400 M_UNKNOWN when the file is no image Pillow can
    read, 413 M_TOO_LARGE when it has too many pixels.
    """
    output_type = spec.output_type(source_type)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(source)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _content_too_large() from None
        except (UnidentifiedImageError, OSError, ValueError):
            raise _cannot_thumbnail() from None
        with image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise _content_too_large()
            try:
                _render_open(image, source, source_type, spec, output_type, destination)
            except MatrixError:
                raise
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise _content_too_large() from None
            except (OSError, ValueError, EOFError, SyntaxError):
                # Truncated or corrupt data found while decoding.
                raise _cannot_thumbnail() from None


def _render_open(
    image: Image.Image,
    source: Path,
    source_type: str,
    spec: ThumbnailSpec,
    output_type: str,
    destination: Path,
) -> None:
    plan = geometry(image.size, spec.width, spec.height, spec.method)
    animated_source = bool(getattr(image, "is_animated", False))
    if spec.animates(source_type) and animated_source:
        frames = getattr(image, "n_frames", 1)
        if frames <= MAX_FRAMES and frames * image.size[0] * image.size[1] <= MAX_ANIMATED_PIXELS:
            _save_animated(image, plan, destination)
            return
    if (
        plan.unchanged(image.size)
        and output_type == source_type
        and not animated_source
        and _oriented(image)
    ):
        # Already small enough and in the right format: the original content, as the spec asks.
        shutil.copyfile(source, destination)
        return
    if output_type == JPEG:
        # Let the JPEG decoder skip detail we would throw away (DCT scaling).
        image.draft("RGB", plan.size)
    image.seek(0)
    still = ImageOps.exif_transpose(image)
    # Orientation may have swapped the sides: plan again on what we now hold.
    plan = geometry(still.size, spec.width, spec.height, spec.method)
    # Convert first: palette and 1-bit images would otherwise be resized without filtering.
    thumbnail = _apply(_still(still, output_type), plan)
    format_name = _FORMATS[output_type][0]
    if output_type == JPEG:
        thumbnail.save(destination, format_name, quality=85, optimize=True)
    else:
        thumbnail.save(destination, format_name, optimize=True)


def _oriented(image: Image.Image) -> bool:
    """True when the image needs no EXIF rotation to display upright."""
    orientation = image.getexif().get(0x0112, 1)
    return orientation in (1, None)


def _save_animated(image: Image.Image, plan: Geometry, destination: Path) -> None:
    frames: list[Image.Image] = []
    durations: list[int] = []
    for frame in ImageSequence.Iterator(image):
        durations.append(int(frame.info.get("duration", 100)) or 100)
        frames.append(_apply(frame.convert("RGBA"), plan))
    first, rest = frames[0], frames[1:]
    first.save(
        destination,
        "WEBP",
        save_all=True,
        append_images=rest,
        duration=durations,
        loop=int(image.info.get("loop", 0)),
        quality=80,
    )
