"""Clusters people can see: each cluster's most confident members and a random sample of them.

`GalleryCollector` takes predictions as they stream (evaluate's chunks, `gat predict`'s batches)
and keeps, per cluster, only the members that will be shown: the `members` most confident ones and
a uniform random sample of `members` (reservoir sampling, seeded), so a gallery of a million images
holds a few hundred in memory. `cluster_cards` turns that into one card per cluster; `card_picture`
draws a card as one PNG grid and `gallery_html` lays every card out in one self-contained HTML page
(pictures inlined as data URIs: it opens offline, from an MLflow artifact or a mail attachment).
Pure functions: callers choose the files.
"""

from __future__ import annotations

import base64
import heapq
import html
import io
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from gatcluster.atomic import atomic_path, write_text_atomic
from gatcluster.evaluation.pictures import attention_overlay, picture_grid

TILE_SIDE = 96  # pixels a member is drawn at (32-px inputs are enlarged 3×)


@dataclass(frozen=True)
class Member:
    """One shown image: the uint8 (C, H, W) input the model saw, its attention map and confidence."""

    image: np.ndarray
    att_map: np.ndarray
    confidence: float
    caption: str


@dataclass
class ClusterMembers:
    """What the collector keeps for one cluster."""

    size: int = 0
    top: list[tuple[float, int, Member]] = field(default_factory=list)  # min-heap on confidence
    sample: list[Member] = field(default_factory=list)


class GalleryCollector:
    """Streaming choice of the members each cluster shows (top by confidence + a seeded sample)."""

    def __init__(self, num_clusters: int, members: int, seed: int) -> None:
        if members < 1:
            raise ValueError(f"a gallery shows at least 1 member per cluster, got {members}")
        self.members = members
        self.clusters = [ClusterMembers() for _ in range(num_clusters)]
        self._rng = np.random.default_rng(seed)
        self._order = itertools.count()  # ties in confidence keep arrival order

    def add(
        self, cluster: int, confidence: float, image: np.ndarray, att_map: np.ndarray, caption: str
    ) -> None:
        """Offer one prediction; copies of the image and map are kept only if it is shown."""
        kept = self.clusters[cluster]
        kept.size += 1
        entry = None
        if len(kept.top) < self.members or confidence > kept.top[0][0]:
            entry = Member(np.array(image), np.array(att_map), float(confidence), caption)
            item = (float(confidence), -next(self._order), entry)
            if len(kept.top) < self.members:
                heapq.heappush(kept.top, item)
            else:
                heapq.heapreplace(kept.top, item)
        # Reservoir sampling (algorithm R): every member ends in the sample with equal probability.
        slot = kept.size - 1 if kept.size <= self.members else int(self._rng.integers(kept.size))
        if slot < self.members:
            entry = entry or Member(np.array(image), np.array(att_map), float(confidence), caption)
            if slot == len(kept.sample):
                kept.sample.append(entry)
            else:
                kept.sample[slot] = entry

    def add_batch(
        self,
        clusters: np.ndarray,
        confidences: np.ndarray,
        images: np.ndarray,
        att_maps: np.ndarray,
        captions,
    ) -> None:
        """`add` for every row of a batch (images uint8 (N, C, H, W), maps (N, S, S))."""
        for k, conf, image, att, caption in zip(
            clusters, confidences, images, att_maps, captions, strict=True
        ):
            self.add(int(k), float(conf), image, att, str(caption))


@dataclass(frozen=True)
class ClusterCard:
    """Everything the gallery shows about one cluster."""

    cluster: int
    name: str
    size: int
    share: float  # fraction of all clustered images
    matched_class: str | None  # the class Hungarian matching gave it (labelled data only)
    purity: float | None  # fraction of its members of that class
    confident: list[Member]
    sample: list[Member]


def cluster_cards(
    collector: GalleryCollector,
    names: list[str],
    matched: list[str | None] | None = None,
    purity: list[float | None] | None = None,
) -> list[ClusterCard]:
    """One card per cluster, most confident members first, the sample in its drawn order."""
    total = sum(c.size for c in collector.clusters) or 1
    cards = []
    for k, kept in enumerate(collector.clusters):
        confident = [m for _, _, m in sorted(kept.top, key=lambda t: (-t[0], -t[1]))]
        cards.append(
            ClusterCard(
                cluster=k,
                name=names[k],
                size=kept.size,
                share=kept.size / total,
                matched_class=matched[k] if matched else None,
                purity=purity[k] if purity else None,
                confident=confident,
                sample=list(kept.sample),
            )
        )
    return cards


def member_tile(member: Member) -> Image.Image:
    """The member with its attention map laid over it, about TILE_SIDE pixels wide."""
    scale = max(1, TILE_SIDE // max(member.image.shape[1:]))
    return attention_overlay(member.image, member.att_map, scale=scale)


def card_title(card: ClusterCard) -> str:
    """One line: cluster, name, size and share, matched class and purity where labels exist."""
    text = f"cluster {card.cluster} ({card.name}): {card.size} images, {card.share:.1%}"
    if card.purity is not None:
        text += f"; matched class {card.matched_class}, purity {card.purity:.1%}"
    return text


def card_picture(card: ClusterCard, columns: int = 8) -> Image.Image:
    """A card as one PNG picture: title, the most confident members, then the random sample."""
    rows: list[tuple[str, list[Member]]] = [
        ("most confident", card.confident),
        ("random sample", card.sample),
    ]
    parts = [text_band(card_title(card), 18)]
    for label, members in rows:
        parts.append(text_band(label if members else f"{label}: none (empty cluster)", 14))
        if members:
            parts.append(picture_grid([member_tile(m) for m in members], columns))
    return stack_vertically(parts)


def text_band(text: str, height: int) -> Image.Image:
    """A white band of `height` pixels with `text` in black."""
    band = Image.new("RGB", (max(8 * len(text), 64), height), "white")
    ImageDraw.Draw(band).text((2, 1), text, fill="black")
    return band


def stack_vertically(parts: list[Image.Image], gap: int = 4) -> Image.Image:
    """Pictures one below the other on white, left-aligned."""
    width = max(p.width for p in parts)
    height = sum(p.height for p in parts) + gap * (len(parts) - 1)
    out = Image.new("RGB", (width, height), "white")
    y = 0
    for part in parts:
        out.paste(part, (0, y))
        y += part.height + gap
    return out


def png_data_uri(picture: Image.Image) -> str:
    """A PNG as a data: URI (the page stays one file)."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def members_html(members: list[Member]) -> str:
    """Figures of members; hovering one shows its caption and confidence."""
    if not members:
        return '<p class="empty">none: the cluster is empty</p>'
    figures = []
    for m in members:
        label = html.escape(f"{m.caption} (confidence {m.confidence:.3f})", quote=True)
        figures.append(f'<img src="{png_data_uri(member_tile(m))}" title="{label}" alt="{label}">')
    return '<div class="grid">' + "".join(figures) + "</div>"


def card_html(card: ClusterCard) -> str:
    """One cluster's section of the page."""
    return (
        f'<section id="cluster-{card.cluster}"><h2>{html.escape(card_title(card))}</h2>'
        f"<h3>Most confident</h3>{members_html(card.confident)}"
        f"<h3>Random sample</h3>{members_html(card.sample)}</section>"
    )


PAGE_STYLE = (
    "body{font-family:sans-serif;margin:1em;color:#222}section{margin-bottom:2em}"
    ".grid{display:flex;flex-wrap:wrap;gap:3px}.grid img{image-rendering:pixelated}"
    "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}"
)


def summary_table(cards: list[ClusterCard]) -> str:
    """Cluster, name, size and purity of every cluster, each linking to its section."""
    head = "<tr><th>cluster</th><th>name</th><th>images</th><th>share</th><th>purity</th></tr>"
    rows = "".join(
        f'<tr><td><a href="#cluster-{c.cluster}">{c.cluster}</a></td><td>{html.escape(c.name)}</td>'
        f"<td>{c.size}</td><td>{c.share:.1%}</td>"
        f"<td>{'' if c.purity is None else f'{c.purity:.1%}'}</td></tr>"
        for c in cards
    )
    return f"<table>{head}{rows}</table>"


def gallery_html(cards: list[ClusterCard], title: str, note: str) -> str:
    """The whole gallery as one self-contained HTML page (no external files or scripts)."""
    body = "".join(card_html(c) for c in cards)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{PAGE_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(note)}</p>{summary_table(cards)}{body}</body></html>\n"
    )


def card_file_name(card: ClusterCard) -> str:
    """The PNG file of a card: cluster-<k>.png (names may hold any character; ids do not)."""
    return f"cluster-{card.cluster:03d}.png"


def save_gallery(cards: list[ClusterCard], png_dir: Path, html_file: Path, title: str, note: str) -> None:
    """One PNG per cluster in `png_dir` and the page at `html_file`, each written atomically."""
    png_dir.mkdir(parents=True, exist_ok=True)
    for card in cards:
        with atomic_path(png_dir / card_file_name(card)) as tmp:
            card_picture(card).save(tmp, format="PNG")
    write_text_atomic(html_file, gallery_html(cards, title, note))
