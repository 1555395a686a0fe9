"""The cluster gallery: which members each cluster shows, the PNG cards and the self-contained page."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from gatcluster.evaluation.gallery import (
    GalleryCollector,
    card_file_name,
    card_picture,
    cluster_cards,
    gallery_html,
    save_gallery,
)


def image(value: int) -> np.ndarray:
    return np.full((1, 32, 32), value, dtype=np.uint8)


def att() -> np.ndarray:
    return np.zeros((4, 4), dtype=np.float32)


def test_top_members_are_the_most_confident_in_order():
    collector = GalleryCollector(num_clusters=2, members=3, seed=0)
    confidences = [0.5, 0.9, 0.1, 0.7, 0.95, 0.3]
    for i, conf in enumerate(confidences):
        collector.add(0, conf, image(i), att(), f"img{i}")
    collector.add(1, 0.99, image(9), att(), "other")
    card = cluster_cards(collector, ["a", "b"])[0]
    assert [m.caption for m in card.confident] == ["img4", "img1", "img3"]
    assert card.size == 6 and card.share == pytest.approx(6 / 7)


def test_random_sample_is_uniform_over_the_cluster_and_seeded():
    # Each of 20 members should land in a 5-member sample about 1/4 of the time.
    counts = np.zeros(20)
    for seed in range(400):
        collector = GalleryCollector(1, members=5, seed=seed)
        for i in range(20):
            collector.add(0, 0.5, image(i), att(), str(i))
        for member in collector.clusters[0].sample:
            counts[int(member.caption)] += 1
    assert counts.sum() == 400 * 5
    assert counts.min() > 0.15 * 400 and counts.max() < 0.35 * 400

    def sample(seed: int) -> list[str]:
        collector = GalleryCollector(1, members=5, seed=seed)
        for i in range(20):
            collector.add(0, 0.5, image(i), att(), str(i))
        return [m.caption for m in collector.clusters[0].sample]

    assert sample(3) == sample(3)


def test_a_small_cluster_shows_all_its_members_and_an_empty_one_none():
    collector = GalleryCollector(3, members=4, seed=0)
    collector.add_batch(
        np.array([0, 0]),
        np.array([0.6, 0.8]),
        np.stack([image(1), image(2)]),
        np.stack([att(), att()]),
        ["x", "y"],
    )
    cards = cluster_cards(collector, ["zero", "one", "two"])
    assert sorted(m.caption for m in cards[0].sample) == ["x", "y"]
    assert cards[1].size == 0 and cards[1].confident == [] and cards[1].sample == []
    assert isinstance(card_picture(cards[1]), Image.Image)  # an empty cluster still gets a card


def test_member_copies_are_kept_not_views_of_the_batch():
    batch = np.stack([image(10)])
    collector = GalleryCollector(1, members=2, seed=0)
    collector.add_batch(np.array([0]), np.array([0.9]), batch, np.stack([att()]), ["a"])
    batch[:] = 0  # the caller reuses its buffer
    assert collector.clusters[0].sample[0].image.max() == 10


def test_page_is_self_contained_and_escapes_names(tmp_path):
    collector = GalleryCollector(2, members=2, seed=0)
    collector.add(0, 0.9, image(200), att(), 'photo "<b>".png')
    collector.add(1, 0.8, image(100), att(), "b.png")
    cards = cluster_cards(collector, ["<script>x</script>", "dog"], ["cat", "dog"], [1.0, 0.5])
    page = gallery_html(cards, "Clusters", "note")
    assert "<script>" not in page  # names are text, never markup
    assert "&lt;script&gt;" in page and "&quot;&lt;b&gt;&quot;" in page
    assert not re.search(r'src="(?!data:)', page)  # every picture inlined
    assert "purity 50.0%" in page and "matched class dog" in page
    save_gallery(cards, tmp_path / "png", tmp_path / "gallery.html", "Clusters", "note")
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [card_file_name(c) for c in cards]
    picture = Image.open(tmp_path / "png" / "cluster-000.png")
    assert picture.width >= 96 and picture.height > 96  # title bands + one 96-px tile row


@pytest.mark.e2e
def test_chromium_renders_the_cards_and_their_pictures(tmp_path, browser):
    collector = GalleryCollector(2, members=3, seed=0)
    hot = np.zeros((4, 4), dtype=np.float32)
    hot[1:3, 1:3] = 1.0  # attention in the middle: drawn red-orange over the image
    for i in range(6):
        collector.add(i % 2, 0.5 + i / 20, image(60), hot, f"image {i}")
    cards = cluster_cards(collector, ["sevens", "ones"], ["7", "1"], [0.75, 1.0])
    save_gallery(cards, tmp_path / "gallery", tmp_path / "gallery.html", "Clusters", "note")
    url = (tmp_path / "gallery.html").as_uri()
    dom = browser.dump_dom(url)
    assert "cluster 0 (sevens): 3 images" in dom and "purity 100.0%" in dom
    shot = np.asarray(Image.open(browser.screenshot(url, tmp_path / "shot.png")).convert("RGB")).astype(int)
    r, g, b = shot[..., 0], shot[..., 1], shot[..., 2]
    overlay = (r > 150) & (g < 90) & (b < 60)  # only decoded attention pictures have this colour
    assert overlay.sum() > 500
