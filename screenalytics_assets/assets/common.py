"""What every episode asset shares: partitions, code versions, run overrides, metadata, checks."""

from __future__ import annotations

import resource
import time
from contextlib import contextmanager
from typing import Any

from dagster import AssetExecutionContext, AutomationCondition, Config, MetadataValue
from pydantic import Field, ValidationInfo, create_model, field_validator

from ..checks import episode_check_specs
from ..partitions import episode_partitions
from ..settings import ASSET_SETTINGS, OVERRIDABLE, SCHEMA, Settings, check_value

GROUP = "episode"

#: Concurrency pool of the steps that run the face models (detector, recognizer). Without a
#: limit it changes nothing; the cluster's dagster.yaml limits it to one step per Celery worker
#: (deploy/dagster.yaml, ``concurrency.pools``).
MODEL_POOL = "models"
MODEL_ASSETS = frozenset({"detections", "faces", "embeddings", "facebank"})

#: Declarative automation of the episode assets (evaluated only while the automation sensor runs):
#: an asset whose code version changed (a settings edit) is re-run in every partition, together
#: with everything downstream of it (requested in the same tick, so in the same run), once no run
#: of it is in progress (and not where a parent was never materialized). Nothing else: new
#: uploads are run by the upload sensor (one run per upload, deduplicated by run key) or the CLI,
#: and the review commands re-run what an edit makes stale; reacting to their materializations
#: too (as ``AutomationCondition.eager()`` does) would start a second run of the same partition
#: while the first is still going.
EPISODE_AUTOMATION = (
    (AutomationCondition.code_version_changed().since_last_handled()
     | AutomationCondition.any_deps_match(AutomationCondition.will_be_requested()))
    & ~AutomationCondition.any_deps_missing()
    & ~AutomationCondition.in_progress()
).with_label("settings edited, or parent re-run in the same tick")


class StageConfig(Config):
    """Run config of an episode asset: one typed field per setting the asset reads.

    The fields of each asset's subclass (:func:`stage_config`) default to the settings profile's
    values; a different value replaces that setting for this run only (it changes no code
    version: see the README on staleness). Values are checked against the settings schema
    (``settings.SCHEMA``), so the launchpad rejects a typo, a wrong type or a value out of range.
    """

    @field_validator("*")
    @classmethod
    def _in_range(cls, value: Any, info: ValidationInfo) -> Any:
        return check_value(info.field_name, value)


_PYTHON_TYPES = {int: int, float: float, bool: bool, str: str}


def stage_config(settings: Settings, name: str) -> type[StageConfig]:
    """The run config class of asset ``name``: a field per setting it reads (``model_pack``
    excepted), typed and described from the schema, defaulting to the profile's value."""
    fields = {}
    for key in ASSET_SETTINGS[name]:
        if key not in OVERRIDABLE:
            continue
        spec = SCHEMA[key]
        fields[key] = (_PYTHON_TYPES[spec.type], Field(
            default=settings[key],
            description=f"{spec.help} ({spec.describe()}); default: profile "
                        f"{settings.profile!r}. Applies to this run only."))
    title = "".join(part.title() for part in name.split("_")) + "Config"
    return create_model(title, __base__=StageConfig, **fields)


def stage_kwargs(settings: Settings, name: str, description: str) -> dict[str, Any]:
    """``@asset`` keyword arguments shared by the episode assets, their checks included (each
    asset yields their results at its end through :func:`..checks.checked`)."""
    return dict(
        name=name,
        partitions_def=episode_partitions,
        code_version=settings.code_version(name),
        group_name=GROUP,
        io_manager_key="artifact_io_manager",
        automation_condition=EPISODE_AUTOMATION,
        pool=MODEL_POOL if name in MODEL_ASSETS else None,
        description=description,
        check_specs=episode_check_specs(name),
        metadata={"settings": MetadataValue.json(settings.for_asset(name)),
                  "profile": settings.profile},
    )


def run_overrides(settings: Settings, config: StageConfig, name: str) -> dict[str, Any]:
    """The settings of ``name`` that this run's config sets to another value than the profile."""
    return {k: getattr(config, k) for k in ASSET_SETTINGS[name]
            if k in OVERRIDABLE and getattr(config, k, settings[k]) != settings[k]}


def effective_settings(settings: Settings, config: StageConfig, name: str) -> dict[str, Any]:
    """The settings ``name`` reads, with this run's overrides applied."""
    mine = run_overrides(settings, config, name)
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


def stage_metadata(context: AssetExecutionContext, settings: Settings, name: str,
                   used: dict[str, Any], config: StageConfig, seconds: float,
                   **extra: Any) -> None:
    """Attach the metadata every stage reports: runtime, settings used and overrides, and
    ``peak_rss_mb``: the peak resident memory (MiB) of the process so far
    (``getrusage(RUSAGE_SELF).ru_maxrss``, KiB on Linux), taken at the end of the stage. A run
    of the embedded default (``screenalytics run``, or launched by ``serve``'s daemon) executes
    its steps one after another in one process, so this is the run's peak up to and including
    this stage (the first stage's is its own); on the cluster a step runs in a Celery worker's
    pool process, which outlives the step, so it is that process's peak so far."""
    overrides = run_overrides(settings, config, name)
    context.add_output_metadata(output_name="result", metadata={
        "runtime_s": round(seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "settings_used": MetadataValue.json(used),
        "run_overrides": MetadataValue.json(overrides),
        **extra,
    })


def preview(rows: list[dict], limit: int = 20) -> MetadataValue:
    """A Markdown table of the first ``limit`` rows for the Dagster UI."""
    if not rows:
        return MetadataValue.md("_(empty)_")
    import pandas as pd  # a second of start-up: imported when a table is made, not at planning

    return MetadataValue.md(pd.DataFrame(rows[:limit]).to_markdown(index=False))
