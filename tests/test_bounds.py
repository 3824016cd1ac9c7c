"""convzoo.bounds: the one module every entry point asks before it works (images, counts, typed numbers)."""

from __future__ import annotations

import io
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from convzoo.bounds import (BadImage, BadNumber, ImageLimits, NotAnImage, TooLarge, jpeg_scans, open_image,
                            parse_count, parse_fraction, parse_number, read_image)

pytestmark = pytest.mark.unit


def encoded(image: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


@pytest.mark.parametrize("text,sentence", [
    ("", "is empty"), ("nan", "must be a number such as"), ("inf", "must be a number such as"),
    ("1e5000", "must be from -10 to 10, got 1e5000"), ("9" * 5000, "5,000 characters"),
    ("\u0661\u0662", "digits 0-9"), ("12abc", "must be a number such as"), ("1.5", "whole number"),
    ("11", "must be from -10 to 10, got 11"),
])
def test_parse_number_says_what_is_wrong(text, sentence):
    with pytest.raises(BadNumber, match=sentence):
        parse_number(text, "padding", -10, 10, integer=True)


def test_parse_number_takes_what_people_type():
    assert parse_number(" 3 ", "n", 0, 10, integer=True) == 3
    assert parse_number("\u22122.5", "n", -10, 10) == -2.5  # a typographic minus
    assert parse_number("1e1", "n", 0, 10, integer=True) == 10
    assert parse_number(10**5000, "n", 0, 10**6000) == 10**5000  # Python integers compare without converting
    with pytest.raises(BadNumber, match="more than 40 digits"):
        parse_number(10**5000, "n", 0, 10)


def test_parse_fraction_bounds_the_exponent_before_fraction_computes_it():
    assert parse_fraction("7/2", "cell", -100, 100) == Fraction(7, 2)
    assert parse_fraction("0.25", "cell", -1, 1) == Fraction(1, 4)
    for text, sentence in [("1e-999999999", "exponent"), ("1/0", "0 below the line"), ("1e40", "must be from")]:
        with pytest.raises(BadNumber, match=sentence):
            parse_fraction(text, "cell", -1e6, 1e6)


@settings(max_examples=300, deadline=1000)
@given(st.text(max_size=80))
def test_any_text_is_a_number_or_a_sentence_at_once(text):
    for parse in (lambda t: parse_number(t, "x", -1e6, 1e6), lambda t: parse_fraction(t, "x", -1e6, 1e6)):
        try:
            value = parse(text)
        except BadNumber as e:
            assert "x" in str(e) and len(str(e)) < 300
        else:
            assert -1e6 <= value <= 1e6


def test_parse_count_is_ascii_digits_of_bounded_length():
    assert parse_count("0", "n") == 0 and parse_count(b"123456789012345678", "n") == 123456789012345678
    for bad in ("\u00b2", "+1", "1 ", "0x10"):
        with pytest.raises(BadNumber, match="digits 0-9"):
            parse_count(bad, "n")
    with pytest.raises(TooLarge, match="19 digits"):
        parse_count("9" * 19, "n")


def test_jpeg_scans_counts_progressive_scans_and_walks_past_metadata():
    picture = Image.new("RGB", (64, 64), (90, 20, 200))
    assert jpeg_scans(encoded(picture, "JPEG")) == 1
    progressive = encoded(picture, "JPEG", progressive=True)
    assert 2 <= jpeg_scans(progressive) <= 12
    exif = Image.Exif()
    exif[0x010E] = "\xff\xda" * 100  # marker bytes inside a metadata segment are not scans
    assert jpeg_scans(encoded(picture, "JPEG", exif=exif)) == 1


def test_open_image_refuses_before_decoding():
    limits = ImageLimits(max_pixels=100 * 100, max_jpeg_scans=3, formats=("PNG", "JPEG"))
    with pytest.raises(BadImage, match="empty"):
        open_image(b"", limits)
    with pytest.raises(NotAnImage, match="PNG or JPEG"):
        open_image(b"hello, not an image", limits)
    with pytest.raises(NotAnImage):
        open_image(encoded(Image.new("L", (8, 8)), "GIF"), limits)
    with pytest.raises(TooLarge, match="101x100"):
        open_image(encoded(Image.new("L", (101, 100)), "PNG"), limits)
    with pytest.raises(TooLarge, match="scans"):
        open_image(encoded(Image.new("RGB", (64, 64)), "JPEG", progressive=True), limits)
    with pytest.raises(BadImage, match="truncated or corrupt"):
        read_image(encoded(Image.new("L", (64, 64)), "PNG")[:60], limits)


def test_read_image_turns_the_picture_upright_from_a_file(tmp_path):
    upright = Image.new("L", (40, 20), 0)
    upright.paste(255, (0, 0, 10, 20))  # a white band on the left
    exif = Image.Exif()
    exif[0x0112] = 8  # stored turned a quarter clockwise; 8 says: turn it back
    path = tmp_path / "photo.jpg"
    upright.transpose(Image.Transpose.ROTATE_270).save(path, format="JPEG", exif=exif)
    read = read_image(path)
    assert read.size == (40, 20)
    assert read.getpixel((2, 10)) > 200 and read.getpixel((38, 10)) < 50
    with pytest.raises(BadImage, match="no such file"):
        read_image(tmp_path / "missing.png")
