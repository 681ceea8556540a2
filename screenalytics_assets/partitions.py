"""Episode partitions: one dynamic partition per ep_id."""

from __future__ import annotations

from dagster import DagsterInstance, DynamicPartitionsDefinition

from .core.ep_id import validate_ep_id

EPISODES_PARTITION = "episodes"
episode_partitions = DynamicPartitionsDefinition(name=EPISODES_PARTITION)


def register_episode(instance: DagsterInstance, ep_id: str) -> bool:
    """Validate ``ep_id`` and add it as a partition; returns True when it was new.

    Raises:
        InvalidEpIdError: ``ep_id`` breaks the grammar (nothing is registered).
    """
    validate_ep_id(ep_id)
    if instance.has_dynamic_partition(EPISODES_PARTITION, ep_id):
        return False
    instance.add_dynamic_partitions(EPISODES_PARTITION, [ep_id])
    return True
