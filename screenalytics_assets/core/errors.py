"""Errors raised for bad input. Each message names the input and what to do about it."""

from __future__ import annotations


class ScreenalyticsError(Exception):
    """Base class of every error the pipeline raises on purpose."""


class InvalidEpIdError(ScreenalyticsError, ValueError):
    """An episode id does not follow ``{show}-s{season:02d}e{episode:02d}``."""


class VideoError(ScreenalyticsError):
    """A video file is missing, empty, truncated, not a video, or has no video stream."""


class ModelPackError(ScreenalyticsError):
    """A model pack is missing, incomplete or corrupted."""


class ArtifactError(ScreenalyticsError):
    """A stored artifact is missing or unreadable."""


class ArtifactIntegrityError(ArtifactError):
    """A stored artifact no longer matches the sha256 and row count recorded when it was
    written (truncated, rows dropped, bytes changed), or it has no integrity manifest."""
