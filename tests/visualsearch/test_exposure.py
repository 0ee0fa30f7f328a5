"""Photos taken in dim light are stretched to a catalogue photo's levels before search;
lit, flat and switched-off cases are left alone."""

import numpy as np
from PIL import Image

from tests.visualsearch.test_localisation import garment
from visualsearch.distortions import shopper_photo
from visualsearch.exposure import brighten_dim


def levels(image):
    luminance = np.asarray(image.convert("RGB"), np.float32).mean(axis=2)
    return np.percentile(luminance, (1, 99))


def test_a_dim_photo_is_stretched_to_the_full_range():
    dark = shopper_photo(garment(), 3, "low_light").image
    assert levels(dark)[1] < 130  # as the distortion made it
    bright = brighten_dim(dark, level=130)
    low, high = levels(bright)
    assert bright.size == dark.size and bright.mode == "RGB"
    # Near black and white: a tinted channel clipped at 255 (or 0) keeps the pixel's mean
    # of channels a little inside.
    assert low <= 10 and high >= 230


def test_lit_flat_and_switched_off_photos_are_left_alone(settings):
    lit = garment()
    assert levels(lit)[1] >= 130
    assert brighten_dim(lit, level=130) is lit
    flat = Image.new("RGB", (64, 64), (40, 40, 40))  # dim, but nothing to stretch
    assert brighten_dim(flat, level=130) is flat
    dark = shopper_photo(garment(), 3, "low_light").image
    settings.VISUALSEARCH_DIM_PHOTO_LEVEL = None
    assert brighten_dim(dark) is dark
    settings.VISUALSEARCH_DIM_PHOTO_LEVEL = 130
    assert brighten_dim(dark) is not dark


def test_a_large_photo_is_sampled_not_read_whole():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 90, size=(2000, 3000, 3), dtype=np.uint8)
    big = Image.fromarray(pixels, "RGB")
    assert levels(brighten_dim(big, level=130))[1] >= 240
