"""Dynamic partitions: one per episode (ep_id), one per season (``{show}-s{NN}``), and one per
show (its facebank)."""

from __future__ import annotations

import re

from dagster import DagsterInstance, DynamicPartitionsDefinition

from .core.ep_id import EpisodeId, parse_ep_id, validate_ep_id, validate_show
from .core.errors import InvalidEpIdError

EPISODES_PARTITION = "episodes"
SEASONS_PARTITION = "seasons"
episode_partitions = DynamicPartitionsDefinition(name=EPISODES_PARTITION)
season_partitions = DynamicPartitionsDefinition(name=SEASONS_PARTITION)
SHOWS_PARTITION = "shows"
show_partitions = DynamicPartitionsDefinition(name=SHOWS_PARTITION)

_SEASON_RE = re.compile(r"^(?P<show>[a-z0-9]+(?:-[a-z0-9]+)*)-s(?P<season>\d{2})$")


def season_key(show: str, season: int) -> str:
    """Season partition key ``{show}-s{season:02d}`` (``rhobh-s05``).

    Raises:
        InvalidEpIdError: a bad show slug or a season outside 0-99.
    """
    validate_show(show)
    if not isinstance(season, int) or not 0 <= season <= 99:
        raise InvalidEpIdError(f"invalid season {season!r}: expected a number from 0 to 99")
    return f"{show}-s{season:02d}"


def parse_season_key(key: str) -> tuple[str, int]:
    """``rhobh-s05`` -> ``("rhobh", 5)``. Raises InvalidEpIdError on anything else."""
    m = _SEASON_RE.match(key) if isinstance(key, str) else None
    if not m:
        raise InvalidEpIdError(
            f"invalid season key {key!r}: expected '{{show}}-s{{season:02d}}', e.g. 'rhobh-s05'")
    return validate_show(m["show"]), int(m["season"])


def season_of(ep_id: str) -> str:
    """The season partition key of an episode (``rhobh-s05e14`` -> ``rhobh-s05``)."""
    e = parse_ep_id(validate_ep_id(ep_id))
    return season_key(e.show, e.season)


def season_episodes(instance: DagsterInstance, key: str) -> list[str]:
    """Registered episode partitions of a season, sorted: those whose parsed show slug and season
    number are the season's (never a text-prefix match: show ``x``'s season 1 must not pick up an
    episode of another show whose slug starts with ``x-s01e``)."""
    show, season = parse_season_key(key)
    return sorted(ep for ep in instance.get_dynamic_partitions(EPISODES_PARTITION)
                  if (parsed := _parsed(ep)) and (parsed.show, parsed.season) == (show, season))


def show_episodes(instance: DagsterInstance, show: str) -> list[str]:
    """Registered episode partitions of a show (by the parsed show slug), sorted."""
    validate_show(show)
    return sorted(ep for ep in instance.get_dynamic_partitions(EPISODES_PARTITION)
                  if (parsed := _parsed(ep)) and parsed.show == show)


def _parsed(ep_id: str) -> EpisodeId | None:
    """The parsed ep_id, or None for a partition key that breaks the grammar (registered by an
    older version, or by hand)."""
    try:
        return parse_ep_id(validate_ep_id(ep_id))
    except InvalidEpIdError:
        return None


def episode_partition_keys(ep_id: str) -> dict[str, str]:
    """What registering an episode adds: partitions definition name -> key, for the episode, its
    season and its show (the show's ``facebank`` partition). The one definition every entry
    point (CLI, sensors, tests) registers through.

    Raises:
        InvalidEpIdError: ``ep_id`` breaks the grammar.
    """
    e = parse_ep_id(validate_ep_id(ep_id))
    return {SHOWS_PARTITION: validate_show(e.show), SEASONS_PARTITION: season_key(e.show, e.season),
            EPISODES_PARTITION: ep_id}


def missing_partitions(instance: DagsterInstance, ep_ids: list[str]) -> dict[str, list[str]]:
    """Partitions definition name -> the keys that registering ``ep_ids`` would add (those the
    instance lacks), in first-seen order. Raises InvalidEpIdError on a bad ep_id."""
    out: dict[str, list[str]] = {}
    for ep_id in ep_ids:
        for name, key in episode_partition_keys(ep_id).items():
            keys = out.setdefault(name, [])
            if key not in keys and not instance.has_dynamic_partition(name, key):
                keys.append(key)
    return {name: keys for name, keys in out.items() if keys}


def register_episode(instance: DagsterInstance, ep_id: str) -> bool:
    """Validate ``ep_id`` and add it as a partition, with its season and its show
    (:func:`episode_partition_keys`); True when the episode was new.

    Raises:
        InvalidEpIdError: ``ep_id`` breaks the grammar (nothing is registered).
    """
    new = missing_partitions(instance, [ep_id])
    for name, keys in new.items():
        instance.add_dynamic_partitions(name, keys)
    return ep_id in new.get(EPISODES_PARTITION, [])


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
