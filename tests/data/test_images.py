"""Decoding arbitrary image files: modes, alpha, 16-bit, EXIF orientation, bad files, fitting."""

from __future__ import annotations

import struct
import threading
import warnings

import numpy as np
import pytest
from PIL import Image

from gatcluster.data import images
from gatcluster.data.fit import FIT_RULE, fit_images
from gatcluster.data.images import (
    PREPROCESSING,
    ImageDecodeError,
    is_image_file,
    load_image,
)
from gatcluster.data.parallel import threaded_map


def saved(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def noise_rgb(h: int = 40, w: int = 60) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("channels", [1, 3])
def test_png_round_trip_is_exact(tmp_path, channels):
    image = noise_rgb()
    array = load_image(saved(image, tmp_path / "x.png"), channels)
    expected = np.asarray(image if channels == 3 else image.convert("L"))
    assert array.dtype == np.uint8 and array.shape == (40, 60, channels)
    assert np.array_equal(array.reshape(expected.shape), expected)


def test_grayscale_to_rgb_replicates_and_back_is_identity(tmp_path):
    grey = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16))
    path = saved(grey, tmp_path / "g.png")
    rgb, luma = load_image(path, 3), load_image(path, 1)
    assert np.array_equal(rgb[..., 0], rgb[..., 2]) and np.array_equal(rgb[..., 1], np.asarray(grey))
    assert np.array_equal(luma[..., 0], np.asarray(grey))


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    path = saved(Image.fromarray(values), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")  # really stored and reopened as 16-bit
    assert load_image(path, 1)[0, :, 0].tolist() == [0, 1, 128, 255]


def test_palette_with_transparency_composites_on_black(tmp_path):
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 255, 255, 255, 0, 0] + [0] * 762)
    image.putpixel((1, 1), 1)
    path = saved(image, tmp_path / "p.png", transparency=0)  # palette entry 0 (white) transparent
    array = load_image(path, 3)
    assert array[0, 0].tolist() == [0, 0, 0] and array[1, 1].tolist() == [255, 0, 0]


def test_rgba_alpha_is_composited_on_black(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (200, 100, 50, 255)  # opaque: kept
    rgba[0, 1] = (200, 100, 50, 0)  # transparent: black
    rgba[1, 0] = (200, 100, 50, 128)  # half: about half the colour
    array = load_image(saved(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png"), 3)
    assert array[0, 0].tolist() == [200, 100, 50] and array[0, 1].tolist() == [0, 0, 0]
    assert np.allclose(array[1, 0], [100, 50, 25], atol=1)


def test_la_stays_grey_and_composites_on_black(tmp_path):
    la = Image.merge("LA", [Image.new("L", (3, 3), 200), Image.new("L", (3, 3), 0)])
    la.putpixel((0, 0), (200, 255))
    array = load_image(saved(la, tmp_path / "la.png"), 1)
    assert array.shape == (3, 3, 1) and array[0, 0, 0] == 200 and array[1, 1, 0] == 0


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = saved(Image.new("CMYK", (8, 8), (255, 0, 0, 0)), tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    assert np.allclose(load_image(path, 3)[4, 4], [0, 255, 255], atol=3)  # pure cyan


def test_one_bit_image_gives_0_and_255(tmp_path):
    image = Image.new("1", (4, 4), 0)
    image.putpixel((2, 1), 1)
    array = load_image(saved(image, tmp_path / "bw.png"), 1)
    assert array[1, 2, 0] == 255 and array.sum() == 255


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:8, :8] = 255  # white block at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = saved(Image.fromarray(pixels), tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    array = load_image(path, 1)
    assert array.shape == (40, 20, 1)  # portrait after rotation
    assert array[:8, -8:].mean() > 200 and array[:8, :8].mean() < 50  # top-left went to top-right


def test_an_image_whose_exif_cannot_be_read_is_kept_as_stored(tmp_path, monkeypatch):
    # Pillow raised struct.error / TypeError on a photo whose EXIF tag had the wrong type (the
    # pixels were fine): the image stays, unturned, instead of stopping fetch or gat predict.
    def damaged(image):
        raise struct.error("required argument is not an integer")

    monkeypatch.setattr(images.ImageOps, "exif_transpose", damaged)
    path = saved(noise_rgb(), tmp_path / "photo.jpg", quality=95)
    assert load_image(path, 3).shape == (40, 60, 3)


def test_sixteen_bit_rounding_matches_the_exact_scale_for_every_value(tmp_path):
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    path = saved(Image.fromarray(values), tmp_path / "ramp.png")
    expected = np.rint(values.astype(np.float64) * (255 / 65535)).astype(np.uint8)
    assert np.array_equal(load_image(path, 1)[..., 0], expected)


def corrupt_png(path):
    """A valid PNG whose compressed pixel data is overwritten in the middle."""
    noise_rgb().save(path)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = b"\xab" * 64
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("hello, I am text"), "not an image"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40), "not an image"),
        (corrupt_png, "corrupt"),
    ],
    ids=["zero-byte", "text-named-png", "png-signature-only", "corrupt-png-data"],
)
def test_bad_files_raise_with_a_short_reason(tmp_path, make, reason):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(ImageDecodeError, match=reason) as err:
        load_image(path, 3)
    assert isinstance(err.value, ValueError)
    if reason != "corrupt":  # verify() reads headers only: bad pixel data still passes it
        assert not is_image_file(path)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_files_are_reported(tmp_path, suffix):
    whole = saved(noise_rgb(), tmp_path / f"whole{suffix}")
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ImageDecodeError, match="truncated"):
        load_image(cut, 3)


def test_missing_file_and_folder_are_decode_errors(tmp_path):
    with pytest.raises(ImageDecodeError, match="cannot read"):
        load_image(tmp_path / "nope.png", 1)
    with pytest.raises(ImageDecodeError, match="cannot read"):
        load_image(tmp_path, 1)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = saved(Image.new("L", (40, 40)), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1,600 pixels > 2 × limit: Pillow's error
    with pytest.raises(ImageDecodeError, match="too large"):
        load_image(path, 1)


def test_an_image_between_the_pixel_limit_and_twice_it_loads_without_a_warning(tmp_path, monkeypatch):
    path = saved(Image.new("L", (40, 40)), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1,600 pixels: Pillow's warning zone
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        assert load_image(path, 1).shape == (40, 40, 1)


def test_unicode_and_space_names(tmp_path):
    path = saved(noise_rgb(5, 7), tmp_path / "ünï cödé 图像 .png")
    assert load_image(path, 3).shape == (5, 7, 3) and is_image_file(path)


def test_content_decides_not_the_suffix(tmp_path):
    path = saved(noise_rgb(5, 7), tmp_path / "picture.data", format="PNG")
    assert is_image_file(path) and load_image(path, 1).shape == (5, 7, 1)


def test_channels_other_than_1_or_3_are_refused(tmp_path):
    with pytest.raises(ValueError, match="channels"):
        load_image(saved(noise_rgb(), tmp_path / "x.png"), 4)


def test_preprocessing_contract_names_the_decoding_choices():
    assert PREPROCESSING["alpha"] == "composite-on-black" and PREPROCESSING["orientation"] == "exif"


def photo(h: int, w: int) -> Image.Image:
    """A smooth colour picture with grain, like a photo's content (noise alone does not compress)."""
    rng = np.random.default_rng(1)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
    grain = rng.integers(-6, 7, (h, w, 3))
    return Image.fromarray((np.asarray(coarse).astype(int) + grain).clip(0, 255).astype(np.uint8))


@pytest.mark.parametrize(("at_least", "decoded"), [(64, (75, 100)), (100, (150, 200)), (200, (300, 400))])
def test_a_jpeg_decodes_at_the_smallest_scale_keeping_both_sides(tmp_path, at_least, decoded):
    path = saved(photo(600, 800), tmp_path / "big.jpg", quality=92)
    array = load_image(path, 3, at_least)
    assert array.shape[:2] == decoded  # 1/8, 1/4, 1/2: the smallest whose shorter side >= at_least
    full = load_image(path, 3)
    assert full.shape[:2] == (600, 800)
    fitted = fit_images(array[None], at_least, FIT_RULE)[0].astype(int)
    reference = fit_images(full[None], at_least, FIT_RULE)[0].astype(int)
    assert np.abs(fitted - reference).mean() < 1.0 and np.abs(fitted - reference).max() <= 12


def test_reduced_decoding_leaves_small_jpegs_other_formats_and_orientation_alone(tmp_path):
    small = saved(photo(90, 120), tmp_path / "small.jpg", quality=92)
    assert np.array_equal(load_image(small, 3, 64), load_image(small, 3))  # 1/2 would be 45 px
    png = saved(photo(600, 800), tmp_path / "big.png")
    assert load_image(png, 3, 64).shape == (600, 800, 3)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, displayed portrait: both sides still >= at_least
    turned = saved(photo(600, 800), tmp_path / "phone.jpg", exif=exif.tobytes(), quality=92)
    assert load_image(turned, 1, 64).shape == (100, 75, 1)


def test_preprocessing_names_the_jpeg_scaling():
    assert PREPROCESSING["jpeg_scale"] == images.JPEG_SCALE


def test_threads_decode_without_leaving_a_warning_filter_or_letting_the_warning_through(
    tmp_path, monkeypatch
):
    path = saved(Image.new("L", (40, 40)), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1,600 pixels: Pillow's warning zone
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("error")  # any warning that gets through fails the decode
        load_image(path, 1)  # puts the one filter first
        filters = list(warnings.filters)
        shapes = list(threaded_map(lambda _: load_image(path, 1).shape, iter(range(200)), 4))
        assert shapes == [(40, 40, 1)] * 200 and not caught and warnings.filters == filters


def test_the_pixel_budget_holds_back_a_decode_until_others_release_enough():
    budget = images.PixelBudget(100)
    budget.acquire(80)
    budget_taken = threading.Event()
    waiter = threading.Thread(target=lambda: (budget.acquire(30), budget_taken.set()))
    waiter.start()
    assert not budget_taken.wait(0.2)  # 80 + 30 > 100: it waits
    budget.release(80)
    assert budget_taken.wait(10) and budget.used == 30
    waiter.join()
    budget.release(30)
    budget.acquire(500)  # alone, even a file beyond the budget is decoded
    assert budget.used == 500
    budget.release(500)


def test_every_decode_returns_its_pixels_to_the_budget(tmp_path):
    good = saved(photo(60, 80), tmp_path / "good.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:300])
    load_image(good, 3, 16)
    with pytest.raises(ImageDecodeError):
        load_image(cut, 3)
    assert images.PIXEL_BUDGET.used == 0


def test_a_jpeg_beyond_the_pixel_limit_decodes_when_its_reduced_scale_fits(tmp_path, monkeypatch):
    jpeg = saved(photo(100, 100), tmp_path / "huge.jpg", quality=90)
    png = saved(photo(100, 100), tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10,000 pixels: beyond twice the limit
    assert load_image(jpeg, 3, 8).shape == (13, 13, 3)  # decoded at 1/8: 169 pixels
    renamed = tmp_path / "IMG_0001"  # no suffix: recognised by content
    renamed.write_bytes(jpeg.read_bytes())
    assert is_image_file(renamed)
    for path, at_least in ((jpeg, None), (png, 8), (jpeg, 50)):  # in full; not a JPEG; 1/2 is 2,500
        with pytest.raises(ImageDecodeError, match="too large"):
            load_image(path, 3, at_least)
    assert images.PIXEL_BUDGET.used == 0


def test_an_iphone_heic_photo_decodes_upright_and_counts_as_an_image(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:8, :8] = 255  # white block at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display", as a phone held upright records it
    path = saved(Image.fromarray(pixels), tmp_path / "IMG_0001.HEIC", exif=exif.tobytes(), quality=95)
    assert is_image_file(path) and path.suffix.lower() in images.IMAGE_SUFFIXES
    array = load_image(path, 1, 16)
    assert array.shape == (40, 20, 1)  # portrait after rotation
    assert array[:8, -8:].mean() > 200 and array[:8, :8].mean() < 50


def test_a_heic_photo_is_decoded_whole_not_from_its_embedded_thumbnail(tmp_path):
    photo(480, 640).save(tmp_path / "p.heic", quality=90)  # pillow-heif embeds a thumbnail by default
    assert load_image(tmp_path / "p.heic", 3, 64).shape == (480, 640, 3)


def test_a_heif_file_of_a_codec_this_build_lacks_is_skipped_with_a_reason(tmp_path, monkeypatch):
    heic = saved(photo(48, 64), tmp_path / "p.heic", quality=90)

    def no_codec(self):
        raise RuntimeError("Unsupported feature: Unsupported codec: compression format has not been built in")

    monkeypatch.setattr(type(Image.open(heic)), "load", no_codec)
    with pytest.raises(ImageDecodeError, match="corrupt .*not been built in"):
        load_image(heic, 3)
