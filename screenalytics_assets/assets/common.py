"""What every episode asset shares: partitions, code versions, run overrides, metadata."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any

import pandas as pd
from dagster import AssetExecutionContext, AutomationCondition, Config, MetadataValue
from pydantic import Field

from ..partitions import episode_partitions
from ..settings import ASSET_SETTINGS, Settings

GROUP = "episode"

#: Declarative automation of the episode assets (evaluated only while the automation sensor runs):
#: run when a partition is new or an upstream asset got a new version (a new upload, a re-run
#: parent), and re-run every partition whose asset's code version changed (a settings edit).
EPISODE_AUTOMATION = AutomationCondition.eager() | (
    AutomationCondition.code_version_changed() & ~AutomationCondition.in_progress())


class StageConfig(Config):
    """Run config of an episode asset.

    ``overrides`` replaces settings for this run only (``{"cluster_thresh": "0.7"}``); keys the
    asset does not read are ignored. Overrides do not change the asset's code version: see the
    README on staleness.
    """

    overrides: dict[str, str] = Field(default_factory=dict)


def stage_kwargs(settings: Settings, name: str, description: str) -> dict[str, Any]:
    """``@asset`` keyword arguments shared by the episode assets."""
    return dict(
        name=name,
        partitions_def=episode_partitions,
        code_version=settings.code_version(name),
        group_name=GROUP,
        io_manager_key="artifact_io_manager",
        automation_condition=EPISODE_AUTOMATION,
        description=description,
        metadata={"settings": MetadataValue.json(settings.for_asset(name)),
                  "profile": settings.profile},
    )


def effective_settings(settings: Settings, config: StageConfig, name: str) -> dict[str, Any]:
    """The settings ``name`` reads, with this run's overrides for those keys applied."""
    mine = {k: v for k, v in config.overrides.items() if k in ASSET_SETTINGS[name]}
    return settings.with_overrides(mine).for_asset(name) if mine else settings.for_asset(name)


@contextmanager
def timed():
    """Yields a dict whose ``seconds`` is set to the wall time of the block."""
    box: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - start


def stage_metadata(context: AssetExecutionContext, name: str, used: dict[str, Any],
                   config: StageConfig, seconds: float, **extra: Any) -> None:
    """Attach the metadata every stage reports: runtime, settings used and overrides."""
    overrides = {k: v for k, v in config.overrides.items() if k in ASSET_SETTINGS[name]}
    context.add_output_metadata({
        "runtime_s": round(seconds, 3),
        "settings_used": MetadataValue.json(used),
        "run_overrides": MetadataValue.json(overrides),
        **extra,
    })


def preview(rows: list[dict], limit: int = 20) -> MetadataValue:
    """A Markdown table of the first ``limit`` rows for the Dagster UI."""
    if not rows:
        return MetadataValue.md("_(empty)_")
    return MetadataValue.md(pd.DataFrame(rows[:limit]).to_markdown(index=False))
