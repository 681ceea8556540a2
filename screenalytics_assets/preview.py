"""The Dagster APIs we use that are still beta or preview in Dagster 1.13, each with why there is
no stable alternative. Each wrapper silences that API's notice for that call only; every other
warning stays visible."""

from __future__ import annotations

import warnings
from collections.abc import Callable

from dagster import (
    AssetCheckSpec,
    BetaWarning,
    PreviewWarning,
    asset_check,
    observable_source_asset,
)


def observable_source(**kwargs) -> Callable:
    """``@observable_source_asset(**kwargs)``: the only way for the UI (*Observe sources*) to
    compute a source's data version per partition; ``multi_observable_source_asset`` is beta
    too and reports no per-partition versions."""

    def decorate(fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BetaWarning)
            return observable_source_asset(**kwargs)(fn)

    return decorate


def partitioned_asset_check(**kwargs) -> Callable:
    """``@asset_check(partitions_def=..., **kwargs)``: a check evaluated per episode (or show)
    partition, so each run checks its own partition; no stable form exists yet."""

    def decorate(fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PreviewWarning)
            return asset_check(**kwargs)(fn)

    return decorate


def partitioned_check_spec(name: str, **kwargs) -> AssetCheckSpec:
    """``AssetCheckSpec(name, partitions_def=..., **kwargs)``: a check that its asset's step
    evaluates, recorded per partition (without ``partitions_def`` its evaluations carry no
    partition, so the UI would show one status for all episodes); no stable form exists yet."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreviewWarning)
        return AssetCheckSpec(name, **kwargs)
