"""The review queue page's data: ``core.review_queue`` items with the identities' cards, so the
page shows each decision's faces side by side with a one-click accept."""

from __future__ import annotations

from dataclasses import dataclass

from resources.edits import episode_review_queue
from resources.storage import ArtifactStore

from ..core.review_queue import QueueItem
from .data import Card, EpisodeView


@dataclass
class QueueRow:
    """One decision on the page: the item and the cards of its identities (in item order)."""

    item: QueueItem
    cards: list[Card]


def queue_rows(store: ArtifactStore, view: EpisodeView, cluster_thresh: float) -> list[QueueRow]:
    """The episode's review queue (``resources.edits.episode_review_queue``) as page rows.

    Raises:
        ArtifactError: the episode's embeddings were never materialized.
    """
    cards = {c.identity_id: c for c in view.cards}
    return [QueueRow(item, [cards[i] for i in item.identity_ids])
            for item in episode_review_queue(store, view.ep_id, cluster_thresh)
            if all(i in cards for i in item.identity_ids)]
