"""Dynamic partitions: one per episode (ep_id), and one per show (its facebank)."""

from __future__ import annotations

from dagster import DagsterInstance, DynamicPartitionsDefinition

from .core.ep_id import parse_ep_id, validate_ep_id, validate_show

EPISODES_PARTITION = "episodes"
episode_partitions = DynamicPartitionsDefinition(name=EPISODES_PARTITION)
SHOWS_PARTITION = "shows"
show_partitions = DynamicPartitionsDefinition(name=SHOWS_PARTITION)


def register_episode(instance: DagsterInstance, ep_id: str) -> bool:
    """Validate ``ep_id`` and add it as a partition, and its show as a show partition; returns
    True when the episode was new.

    Raises:
        InvalidEpIdError: ``ep_id`` breaks the grammar (nothing is registered).
    """
    validate_ep_id(ep_id)
    register_show(instance, parse_ep_id(ep_id).show)
    if instance.has_dynamic_partition(EPISODES_PARTITION, ep_id):
        return False
    instance.add_dynamic_partitions(EPISODES_PARTITION, [ep_id])
    return True


def register_show(instance: DagsterInstance, show: str) -> bool:
    """Validate a show slug and add it as a show partition; returns True when it was new.

    Raises:
        InvalidEpIdError: ``show`` is not a lower-case slug (nothing is registered).
    """
    validate_show(show)
    if instance.has_dynamic_partition(SHOWS_PARTITION, show):
        return False
    instance.add_dynamic_partitions(SHOWS_PARTITION, [show])
    return True
