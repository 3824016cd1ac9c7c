"""Cost before work: the bounds every entry point checks before it allocates or computes.

The service's HTTP front and decoders, its tensor parser, the Python API and the app's callbacks
all ask this module, so an image, a header or a number typed into a box is refused by the same
rule, with the same sentence, wherever it arrives:

* ``read_image`` / ``open_image``: an upload checked in bytes, in pixels (from the header, before
  a pixel is decompressed) and in decode time (a JPEG's scan count: each progressive scan decodes
  the whole image again), then decoded with its EXIF orientation applied;
* ``parse_count``: a count in a header or query (``Content-Length``, ``Range``): ASCII digits only,
  of bounded length, so ``int()`` never meets 4,300 digits or a ``²``;
* ``parse_number`` / ``parse_fraction``: what a person types (``1e5000``, ``nan``, 5,000 digits,
  unicode digits), bounded in length and exponent before any arithmetic, then checked against a range.

Errors are ``BadInputError`` subclasses with an HTTP ``status``: the service answers with it, the
app shows the message, the CLI prints it. Stdlib and Pillow only.
"""

from __future__ import annotations

import io
import math
import re
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from convzoo.errors import BadInputError

MiB = 1024 * 1024


class TooLarge(BadInputError):
    """An input past a bound: the service answers 413."""

    status = 413


class BadImage(BadInputError):
    """A truncated or corrupt image, or one with no pixels: 400."""

    status = 400


class NotAnImage(BadImage):
    """Bytes that are not an image of an accepted format: 415."""

    status = 415


class BadNumber(BadInputError):
    """A number that is not one, or lies outside its range: 400."""

    status = 400


# ----------------------------------------------------------------------------------------------
# images


@dataclass(frozen=True)
class ImageLimits:
    """What one uploaded image may cost. The defaults hold a 12-megapixel phone photo and keep its decode
    under about 300 MB and a second or two on a 2-core CPU; the service passes its own ``$CONVZOO_...``."""

    max_bytes: int = 64 * MiB  # the file as uploaded
    max_pixels: int = 4096 * 4096  # width x height, read from the header before decoding
    max_jpeg_scans: int = 100  # progressive JPEGs have about 10; each scan re-decodes the whole image
    formats: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")


SERVICE_FORMATS = ("PNG", "JPEG", "WEBP")
DECODE_BYTES_PER_PIXEL = 16  # while an image is decoded and converted (RGBA, then float copies)


SHOWN = {"WEBP": "WebP"}


def _names(formats: tuple[str, ...]) -> str:
    shown = [SHOWN.get(f, f) for f in formats]
    return ", ".join(shown[:-1]) + f" or {shown[-1]}" if len(shown) > 1 else shown[0]


def jpeg_scans(data: bytes) -> int:
    """Start-of-scan markers in a JPEG: the segments before the first are walked by their lengths; after it,
    entropy-coded data never holds a bare 0xFFDA (a 0xFF there is stuffed with 0x00), so they are counted."""
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return 0  # not a marker where one must be: Pillow will call the file corrupt
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker == 0xDA:
            return 1 + data.count(b"\xff\xda", offset + 2)
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            offset += 2
            continue
        (length,) = struct.unpack_from(">H", data, offset + 2)
        offset += 2 + length
    return 0


def open_image(data: bytes, limits: ImageLimits = ImageLimits(), what: str = "the image") -> Image.Image:
    """An image opened from its bytes, its size and cost checked from the header; no pixel is decoded yet."""
    if not data:
        raise BadImage(f"{what} is empty (0 bytes): upload a {_names(limits.formats)} file")
    if len(data) > limits.max_bytes:
        raise TooLarge(f"{what} is {len(data):,} bytes, more than the limit of {limits.max_bytes:,}; "
                       "send a smaller file")
    try:
        image = Image.open(io.BytesIO(data), formats=list(limits.formats))
    except UnidentifiedImageError:
        raise NotAnImage(f"{what} is not an image of a kind this reads ({_names(limits.formats)}); "
                         "upload one of those") from None
    except Image.DecompressionBombError:
        raise TooLarge(f"{what} has more pixels than the limit of {limits.max_pixels:,}; scale it down first"
                       ) from None
    except ValueError as e:  # Pillow's own limits on text and ICC chunks ("Decompressed data too large")
        raise TooLarge(f"{what}'s metadata is too large ({e}); save it again without metadata") from None
    except (OSError, SyntaxError, EOFError, struct.error) as e:
        raise BadImage(f"{what}'s header is truncated or corrupt ({e}); send the whole file") from None
    width, height = image.size
    if width == 0 or height == 0:
        raise BadImage(f"{what} has no pixels ({width}x{height})")
    if width * height > limits.max_pixels:
        raise TooLarge(f"{what} is {width}x{height} = {width * height:,} pixels, more than the limit of "
                       f"{limits.max_pixels:,}; scale it down first")
    if image.format == "JPEG":
        scans = jpeg_scans(data)
        if scans > limits.max_jpeg_scans:
            raise TooLarge(f"{what} is a JPEG of {scans:,} scans, more than the limit of {limits.max_jpeg_scans} "
                           "(each scan decodes the whole picture again); save it as a baseline JPEG or a PNG")
    return image


def load_image(image: Image.Image, what: str = "the image") -> Image.Image:
    """Decode an opened image's pixels, then turn it upright as its EXIF orientation says (cameras store
    photos sideways and record the turn), as browsers and the app show it."""
    try:
        image.load()
        upright = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
        raise BadImage(f"{what} ({image.format}) is truncated or corrupt ({e}); send the whole file") from None
    except Image.DecompressionBombError as e:
        raise TooLarge(f"{what} is too large to decode ({e}); scale it down first") from None
    return upright if upright is not None else image


def upright_size(image: Image.Image) -> tuple[int, int]:
    """An opened image's size once ``load_image`` turns it upright, from its header: EXIF orientations 5 to 8
    turn the picture a quarter."""
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 -- a broken EXIF block is ignored, as exif_transpose ignores it
        orientation = 1
    return (image.height, image.width) if orientation in (5, 6, 7, 8) else image.size


def read_image(source: bytes | str | Path, limits: ImageLimits = ImageLimits()) -> Image.Image:
    """An image from its bytes or a file, checked (bytes, pixels, scans) before it is decoded, then
    decoded upright. The one reader of the service, the Python API and the app."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        what = f"the image {path.name}"
        try:
            size = path.stat().st_size
            if size > limits.max_bytes:
                raise TooLarge(f"{what} is {size:,} bytes, more than the limit of {limits.max_bytes:,}; "
                               "use a smaller file")
            data = path.read_bytes()
        except FileNotFoundError:
            raise BadImage(f"{source}: no such file") from None
        except IsADirectoryError:
            raise BadImage(f"{source} is a folder, not an image file") from None
        except OSError as e:
            raise BadImage(f"{source} cannot be read ({e.strerror})") from None
        return load_image(open_image(data, limits, what), what)
    return load_image(open_image(bytes(source), limits))


def decode_cost(image: Image.Image) -> int:
    """Bytes that decoding and converting an opened image may hold, from its header alone."""
    return DECODE_BYTES_PER_PIXEL * image.width * image.height


# ----------------------------------------------------------------------------------------------
# numbers


COUNT = re.compile(rb"[0-9]+")
MAX_TEXT = 64  # characters of a typed number: more is not a number a person meant
DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
FRACTION = re.compile(r"[+-]?[0-9]{1,18}\s*/\s*[0-9]{1,18}")
MAX_EXPONENT = 30  # an exact number past 1e30 or below 1e-30 is a typo on any grid here


def parse_count(text: str | bytes, what: str, max_digits: int = 18) -> int:
    """A count from a header or query: ASCII digits only, at most ``max_digits`` of them."""
    raw = text.encode("latin-1", "replace") if isinstance(text, str) else text
    shown = raw[:40].decode("latin-1") + ("..." if len(raw) > 40 else "")
    if not COUNT.fullmatch(raw):
        raise BadNumber(f"{what} must be a count in the digits 0-9, got {shown!r}")
    if len(raw) > max_digits:
        raise TooLarge(f"{what} has {len(raw):,} digits, more than the {max_digits} this server reads; "
                       "send a smaller number")
    return int(raw)


def _clean(value: object, what: str) -> str:
    text = str(value).strip().replace("\u2212", "-")  # a typographic minus, as some keyboards type it
    if not text:
        raise BadNumber(f"{what} is empty: type a number")
    if len(text) > MAX_TEXT:
        raise BadNumber(f"{what} has {len(text):,} characters; type a number of at most {MAX_TEXT}")
    if not text.isascii():
        raise BadNumber(f"{what} is {text!r}: type it with the digits 0-9")
    return text


def _shown(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() and abs(x) < 1e18 else f"{x:g}"


def _range_text(low: float, high: float) -> str:
    return f"{_shown(low)} to {_shown(high)}"


def parse_number(value: object, what: str, low: float, high: float, *, integer: bool = False) -> float | int:
    """A number typed by a person (a Python number, or text such as ``3``, ``-0.5``, ``1e3``), in
    ``low``..``high``; ``integer``: a whole number. Refused in a sentence: empty, not a number, nan or
    infinite, past the range, or with a fractional part where a whole number is wanted."""
    if isinstance(value, bool):
        raise BadNumber(f"{what} must be a number, got {value}")
    if isinstance(value, int):
        number: float | int = value
        if not low <= value <= high:  # compared as Python integers: no conversion of a huge one
            raise BadNumber(f"{what} must be from {_range_text(low, high)}, got {_short(value)}")
    else:
        if isinstance(value, float):
            number = value
        else:
            text = _clean(value, what)
            if not DECIMAL.fullmatch(text):
                raise BadNumber(f"{what} must be a number such as 3 or -0.5, got {text!r}")
            number = float(text)  # any exponent: too large becomes inf, too small 0.0, both cheap
            if math.isinf(number):
                raise BadNumber(f"{what} must be from {_range_text(low, high)}, got {text[:24]}")
        if math.isnan(number) or math.isinf(number):
            raise BadNumber(f"{what} must be a finite number from {_range_text(low, high)}")
        if not low <= number <= high:
            raise BadNumber(f"{what} must be from {_range_text(low, high)}, got {_shown(number)}")
    if integer:
        if number != math.floor(number):
            raise BadNumber(f"{what} must be a whole number, got {number:g}")
        return int(number)
    return number


def _short(n: int) -> str:
    digits = len(str(n)) if abs(n) < 10 ** 40 else None
    return str(n) if digits is not None else "a number of more than 40 digits"


def parse_fraction(value: object, what: str, low: float, high: float, max_denominator: int = 10 ** 6) -> Fraction:
    """An exact number typed by a person: an integer, a decimal (``0.25``, ``1e-3``) or a fraction
    (``7/2``), in ``low``..``high``. Its exponent and digits are bounded before ``Fraction`` sees it (which
    would otherwise compute ``10**999999999`` for ``1e-999999999``)."""
    if isinstance(value, Fraction):
        number = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        parse_number(value, what, low, high)
        number = Fraction(value)
    else:
        text = _clean(value, what)
        if FRACTION.fullmatch(text):
            top, _, bottom = text.partition("/")
            if int(bottom) == 0:
                raise BadNumber(f"{what} is {text}: a fraction cannot have 0 below the line")
            number = Fraction(int(top), int(bottom))
        else:
            parse_number(text, what, low, high)  # refuses what is not a finite decimal in range
            mantissa, _, exponent = text.lower().partition("e")
            if exponent and abs(int(exponent[:6])) > MAX_EXPONENT:  # 6 characters say "past 30" already
                raise BadNumber(f"{what} is {text}: type it without an exponent past e{MAX_EXPONENT}")
            if len(mantissa.lstrip("+-").replace(".", "")) > 18:
                raise BadNumber(f"{what} has more digits than an exercise needs; type at most 18")
            number = Fraction(text)
    if not low <= number <= high:
        raise BadNumber(f"{what} must be from {_range_text(low, high)}, got {float(number):g}")
    if number.denominator > max_denominator:
        number = number.limit_denominator(max_denominator)
    return number
