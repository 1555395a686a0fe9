"""The clean and augmented views: ranges, seeding, and each transform's effect."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gatcluster.config.loading import replace_params
from gatcluster.config.params import AugmentConfig, Params
from gatcluster.config.params_edit import preset_values
from gatcluster.data.prepare import prepare_images
from gatcluster.data.sources import load_folder
from gatcluster.data.views import (
    augmented_view,
    clean_view,
    jitter_hue,
)

IDENTITY = AugmentConfig(brightness=0.0, contrast=0.0, degrees=0, translate=0.0, scale=(1.0, 1.0), shear=0)


def digits_like(n: int = 8, channels: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(n, channels, 16, 16, dtype=torch.uint8)
    x[:, :, 4:12, 6:10] = torch.randint(100, 256, (n, channels, 8, 4), generator=gen, dtype=torch.uint8)
    return x


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_clean_view_scales_to_unit_range_and_converts_to_gray():
    x = digits_like(channels=3)
    view = clean_view(x, grayscale=True)
    assert view.shape == (8, 1, 16, 16) and view.min() >= 0 and view.max() <= 1
    assert clean_view(x, grayscale=False).shape == (8, 3, 16, 16)


def test_identity_augmentation_returns_the_clean_view():
    x = digits_like()
    assert torch.allclose(augmented_view(x, IDENTITY, True, gen(0)), clean_view(x, True), atol=1e-5)


def test_views_are_fixed_by_the_generator_seed():
    x, cfg = digits_like(), AugmentConfig()
    a, b = augmented_view(x, cfg, True, gen(1)), augmented_view(x, cfg, True, gen(1))
    assert torch.equal(a, b) and not torch.equal(a, augmented_view(x, cfg, True, gen(2)))
    assert a.shape == (8, 1, 16, 16) and a.min() >= 0 and a.max() <= 1


def test_flip_gives_each_image_or_its_mirror():
    x = digits_like(32)
    cfg = AugmentConfig(**{**IDENTITY.__dict__, "flip": True})
    out, clean = augmented_view(x, cfg, True, gen(0)), clean_view(x, True)
    mirrored = [torch.allclose(o, c.flip(-1), atol=1e-5) for o, c in zip(out, clean, strict=True)]
    kept = [torch.allclose(o, c, atol=1e-5) for o, c in zip(out, clean, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True)) and 0 < sum(mirrored) < 32


def test_brightness_keeps_black_black_and_contrast_lifts_it():
    x = digits_like()
    bright = augmented_view(x, AugmentConfig(**{**IDENTITY.__dict__, "brightness": 0.5}), True, gen(0))
    assert bright[:, :, :4].abs().max() < 1e-6
    contrast = augmented_view(x, AugmentConfig(**{**IDENTITY.__dict__, "contrast": 0.5}), True, gen(0))
    assert contrast[:, :, :4].max() > 0.01


def test_translation_moves_content_by_whole_pixels():
    x = digits_like(4)
    cfg = AugmentConfig(**{**IDENTITY.__dict__, "translate": 0.25})
    out, clean = augmented_view(x, cfg, True, gen(3)), clean_view(x, True)
    for o, c in zip(out, clean, strict=True):
        shifts = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)]
        assert any(torch.allclose(o, c.roll((dy, dx), dims=(1, 2)), atol=1e-5) for dy, dx in shifts)


def test_rotation_keeps_the_ink_roughly():
    x = digits_like()
    cfg = AugmentConfig(**{**IDENTITY.__dict__, "degrees": 30})
    out, clean = augmented_view(x, cfg, True, gen(0)), clean_view(x, True)
    assert not torch.allclose(out, clean, atol=1e-3)
    assert torch.allclose(out.sum(dim=(1, 2, 3)), clean.sum(dim=(1, 2, 3)), rtol=0.15)


def test_hue_jitter_changes_colour_and_refuses_grey_images():
    rgb = torch.rand(4, 3, 8, 8, generator=gen(0))
    assert not torch.allclose(jitter_hue(rgb, 0.4, gen(1)), rgb)
    gray = torch.rand(4, 1, 8, 8)
    assert jitter_hue(gray, 0.0, gen(1)) is gray
    with pytest.raises(ValueError, match="hue jitter needs colour images, got 1 channel"):
        jitter_hue(gray, 0.4, gen(1))


def test_hue_jitter_reaches_a_grey_model_trained_on_image_files(tmp_path):
    # The ImageNet presets: colour files, a grayscale model, hue 0.2. Files are stored in colour at
    # fetch, so the hue shift happens before the grey conversion and changes what the model sees.
    params = replace_params(Params(), preset_values("imagenet10"))
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    dataset, _ = load_folder(tmp_path, params.model.input_size)
    images = prepare_images(dataset.images, params.model.input_size, params.data.grayscale)
    hue_only = AugmentConfig(**{**IDENTITY.__dict__, "hue": params.augment.hue})
    assert params.data.grayscale and params.augment.hue == 0.2
    seen = augmented_view(images, hue_only, params.data.grayscale, gen(0))
    assert seen.shape[1] == 1 and not torch.allclose(seen, clean_view(images, True), atol=1e-3)
