"""Decode arbitrary image files into uint8 arrays: the one decoder for image files.

The `folder` and ImageNet sources and `gat predict` use it (then `fit.fit_images`), so a file
becomes the same array at training and at prediction time. The choices are listed in
`PREPROCESSING` (and cited in the ONNX model contract):
- EXIF orientation is applied first, so a phone photo is upright as it is displayed.
- Transparent pixels are composited on black, the colour the `pad` rule and digit backgrounds use;
  a transparent sprite then looks like a digit on a dark background rather than on white.
- 16-bit greyscale is scaled by 255/65535 (not clipped, which would turn most of it white).
- CMYK goes to RGB by Pillow's plain conversion (embedded ICC profiles are ignored).
- HEIC/HEIF photos (iPhones' default) decode through pillow-heif's Pillow plugin, turned upright by
  the rotation their container records.
- Greyscale output is ITU-R 601-2 luma, the weights `pixels.LUMA_WEIGHTS` uses.
- JPEGs decode at a reduced scale when the caller names the size it will fit them to: libjpeg's
  DCT-domain scaling by 1/2, 1/4 or 1/8, the smallest that keeps both sides at least that size.
  A 12-megapixel photo for a 128-px model decoded and fitted 8x faster (0.21 s -> 0.026 s on a
  2-core Xeon), its fitted pixels a mean 0.3-0.5 grey levels from a full decode (single pixels of
  fine noise up to about 13).
Decoding threads (`parallel.ordered_map`) share `PIXEL_BUDGET`: a file's pixels are decoded only
while the files decoding beside it hold fewer than the budget's rest, so a folder of huge scans
decodes one at a time and memory stays bounded whatever the number of threads.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

ALPHA_BACKGROUND = (0, 0, 0)
JPEG_SCALE = "dct-1/2-1/4-1/8-keeping-input-size"
PREPROCESSING = {
    "orientation": "exif",
    "alpha": "composite-on-black",
    "sixteen_bit": "scale-255/65535",
    "cmyk": "pillow-convert",
    "grayscale": "itu-r-601-2-luma",
    "jpeg_scale": JPEG_SCALE,
}
IMAGE_SUFFIXES = (
    *(".bmp", ".gif", ".heic", ".heif", ".jpeg", ".jpg", ".png"),
    *(".ppm", ".pgm", ".tif", ".tiff", ".webp"),
)

try:
    from pillow_heif import register_heif_opener
except ImportError:  # the source tree run without its install (a lent GPU machine): HEIC is no image
    pass
else:
    # After Pillow's own readers (init), so that its AVIF reader keeps the AVIF files that name the
    # generic HEIF brand (this libheif cannot decode AV1); no embedded thumbnails: `draft` then
    # leaves a HEIC whole, decoded like the training images, not from a preview of unknown quality.
    Image.init()
    register_heif_opener(thumbnails=False)

_BOMB_WARNING_FILTER = ("ignore", None, Image.DecompressionBombWarning, None, 0)
_FILTERS_LOCK = threading.Lock()

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_MODES = {1: "L", 3: "RGB"}


def preprocessing_record(reduced_jpeg: bool = True) -> dict[str, str]:
    """PREPROCESSING as a data set manifest or a model contract records it: without `jpeg_scale`
    for images decoded before JPEGs were reduced."""
    if reduced_jpeg:
        return dict(PREPROCESSING)
    return {key: value for key, value in PREPROCESSING.items() if key != "jpeg_scale"}


def reduces_jpeg(record: object) -> bool:
    """Whether a recorded preprocessing (any JSON value; absent or damaged: an older record)
    decoded JPEGs at a reduced scale."""
    return isinstance(record, dict) and record.get("jpeg_scale") == JPEG_SCALE


class PixelBudget:
    """Pixels being decoded at once across threads: a decode waits while the others hold more
    than `limit` less its own, and one decode alone always runs."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._changed = threading.Condition()

    def acquire(self, pixels: int) -> None:
        """Wait until `pixels` fit beside the decodes running, then count them."""
        with self._changed:
            self._changed.wait_for(lambda: self.used == 0 or self.used + pixels <= self.limit)
            self.used += pixels

    def release(self, pixels: int) -> None:
        """Return `pixels` to the budget."""
        with self._changed:
            self.used -= pixels
            self._changed.notify_all()


# 50 megapixels: about a gigabyte of decoding and conversion at once, four 12-megapixel photos
# decoded in full, or any number of reduced ones.
PIXEL_BUDGET = PixelBudget(50_000_000)


class ImageDecodeError(ValueError):
    """A file is not a decodable image; the message is a short reason ("truncated", "not an image")."""


def load_image(path: Path, channels: int, at_least: int | None = None) -> np.ndarray:
    """Decode `path` into a uint8 (H, W, channels) array; channels 1 is luma, 3 is RGB.

    `at_least`: the side the image will be fitted to. A JPEG then decodes at the smallest of
    libjpeg's scales (1/1, 1/2, 1/4, 1/8) that keeps both sides at least that long (JPEG_SCALE).
    Raises ImageDecodeError for empty, unreadable, non-image, truncated, corrupt or oversized files.
    """
    if channels not in _MODES:
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    image, pixels = _open_decoded(Path(path), at_least)
    try:
        array = np.asarray(_to_mode(image, _MODES[channels]), dtype=np.uint8)
    finally:
        PIXEL_BUDGET.release(pixels)
    return np.ascontiguousarray(array.reshape(*array.shape[:2], channels))


def is_image_file(path: Path) -> bool:
    """Whether Pillow recognises the content of `path` as an image (the suffix is not consulted).

    A quick header check (`verify`); a truncated file can still pass and fail in `load_image`.
    """
    try:
        with Image.open(path) as image:
            image.verify()
    except Image.DecompressionBombError:
        return True  # an image, and a JPEG of the kind may still decode reduced (`load_image`)
    except Exception:  # any failure of a third-party decoder means "not a usable image"
        return False
    return True


def _open(path: Path, at_least: int | None) -> Image.Image:
    """Image.open, except that a JPEG beyond Pillow's pixel limit (a 200-megapixel phone photo)
    opens when, scaled towards `at_least`, it decodes within the limit: the limit guards memory,
    and a JPEG decoded at 1/8 holds a 64th of its pixels. Anything else beyond it stays refused."""
    try:
        return Image.open(path)
    except Image.DecompressionBombError:
        if at_least is None or not _starts_like_a_jpeg(path):
            raise
        # Pillow's JPEG reader itself: Image.open would refuse the full size before any scaling.
        image = JpegImagePlugin.JpegImageFile(str(path))
        image.draft(None, (at_least, at_least))
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and image.width * image.height > 2 * limit:
            image.close()
            raise
        return image


def _starts_like_a_jpeg(path: Path) -> bool:
    """Whether the file begins with a JPEG start-of-image marker."""
    with path.open("rb") as file:
        return file.read(3) == b"\xff\xd8\xff"


def _ignore_bomb_warnings() -> None:
    """Put the filter that ignores Pillow's DecompressionBombWarning first among the warning filters.

    Pillow warns (two lines) between its pixel limit and twice it, and raises above; the image is
    fitted down to the model's input anyway: the error alone is ours. Checked before each decode
    because a caller's `warnings.catch_warnings` drops it again, and put first so that a
    `simplefilter("error")` cannot turn the warning into a failed decode. Not a catch_warnings
    around each decode: that is not thread-safe (overlapping decodes on the decoding threads
    restored each other's filters, left one behind and let the warning through)."""
    if not warnings.filters or warnings.filters[0] != _BOMB_WARNING_FILTER:
        with _FILTERS_LOCK:
            if not warnings.filters or warnings.filters[0] != _BOMB_WARNING_FILTER:
                warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def _open_decoded(path: Path, at_least: int | None) -> tuple[Image.Image, int]:
    """Open and decode `path` (JPEGs scaled down towards `at_least` when given) with EXIF
    orientation applied, mapping failures to short reasons; with the pixels it holds of
    PIXEL_BUDGET, which the caller releases once it has converted them."""
    try:
        if path.stat().st_size == 0:
            raise ImageDecodeError("empty file")
        _ignore_bomb_warnings()
        with _open(path, at_least) as image:
            if at_least is not None and isinstance(image, JpegImagePlugin.JpegImageFile):
                # JPEG (and MPO) only: JPEG_SCALE is the one reduced decoding recorded. Mode None:
                # no decoder colour conversion, so luma stays ours. Square request: both sides
                # >= at_least whichever way the EXIF orientation turns the image.
                image.draft(None, (at_least, at_least))
            pixels = image.width * image.height
            PIXEL_BUDGET.acquire(pixels)
            try:
                image.load()
                return _upright(image), pixels
            except BaseException:
                PIXEL_BUDGET.release(pixels)
                raise
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageDecodeError("too large") from err
    except UnidentifiedImageError as err:
        raise ImageDecodeError("not an image") from err
    except (FileNotFoundError, PermissionError, IsADirectoryError) as err:
        raise ImageDecodeError(f"cannot read ({err.strerror})") from err
    except OSError as err:
        reason = "truncated" if "truncated" in str(err).lower() else f"corrupt ({err})"
        raise ImageDecodeError(reason) from err
    # What Pillow's plugins raise on bad data; RuntimeError: libheif on a codec it was built without.
    except (SyntaxError, ValueError, EOFError, RuntimeError) as err:
        raise ImageDecodeError(f"corrupt ({err})") from err


def _upright(image: Image.Image) -> Image.Image:
    """`image` turned by its EXIF orientation; as stored when its EXIF cannot be read.

    A damaged EXIF block (a tag of the wrong type) made Pillow raise struct.error or TypeError
    while the pixels were fine: the image is kept, as other viewers show it.
    """
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - whatever Pillow's EXIF parser raises, the pixels stand
        return image.copy()


def _to_mode(image: Image.Image, mode: str) -> Image.Image:
    """Any Pillow mode -> "L" or "RGB" with 16-bit scaling and alpha composited on black."""
    if image.mode in _SIXTEEN_BIT_MODES:
        image = _sixteen_to_eight(image)
    elif image.mode == "F":
        image = image.convert("L")  # float data has no agreed range: Pillow's clip to 0..255
    if _has_alpha(image):
        image = _flatten_alpha(image)
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV; "1" gives 0 / 255 either way
    return image if image.mode == mode else image.convert(mode)


def _sixteen_to_eight(image: Image.Image) -> Image.Image:
    """16-bit greyscale (modes I;16* and I, which Pillow uses for 16-bit data) -> 8-bit "L"."""
    # round(v * 255 / 65535) = round(v / 257), and v / 257 never ends in .5 for an integer v, so
    # (v + 128) // 257 is that rounding exactly, in int32: a quarter of float64's memory (a
    # 13000 x 13000 16-bit PNG took 4.3 GB through float64 temporaries).
    values = np.clip(np.asarray(image), 0, 65535).astype(np.int32)
    values += 128
    values //= 257
    return Image.fromarray(values.astype(np.uint8))


def _has_alpha(image: Image.Image) -> bool:
    """An alpha band, or a palette / single colour marked transparent (PNG tRNS, GIF)."""
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Composite on `ALPHA_BACKGROUND`; greyscale images stay greyscale."""
    grey = image.mode in ("L", "LA", "La")
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
    flat = Image.alpha_composite(background, rgba).convert("RGB")
    return flat.convert("L") if grey else flat
