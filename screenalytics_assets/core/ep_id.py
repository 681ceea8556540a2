"""Episode ids: ``{show}-s{season:02d}e{episode:02d}``, e.g. ``rhobh-s05e14``.

An ep_id becomes part of file paths and S3 keys, so it is validated wherever it enters (CLI,
sensor, partition keys) before it is used. The show slug is lower-case ASCII letters and digits,
optionally joined by single hyphens; it can never contain ``/``, ``.`` or whitespace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidEpIdError

EP_ID_PATTERN = r"(?P<show>[a-z0-9]+(?:-[a-z0-9]+)*)-s(?P<season>\d{2})e(?P<episode>\d{2,3})"
_EP_ID_RE = re.compile(rf"^{EP_ID_PATTERN}$")
_SHOW_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


@dataclass(frozen=True)
class EpisodeId:
    """A parsed, valid episode id.

    Attributes:
        show: lower-case show slug (``rhobh``).
        season: season number (``5``).
        episode: episode number within the season (``14``).
    """

    show: str
    season: int
    episode: int

    @property
    def ep_id(self) -> str:
        return f"{self.show}-s{self.season:02d}e{self.episode:02d}"

    def __str__(self) -> str:
        return self.ep_id


def parse_ep_id(ep_id: object) -> EpisodeId:
    """Parse and validate an ep_id.

    Raises:
        InvalidEpIdError: when ``ep_id`` is not a string of the form ``{show}-s{NN}e{NN}`` with a
            lower-case slug, e.g. ``../x``, ``RHOBH-s05e14`` or ``my show-s01e01``.
    """
    if not isinstance(ep_id, str) or not (m := _EP_ID_RE.match(ep_id)):
        raise InvalidEpIdError(
            f"invalid ep_id {ep_id!r}: expected '{{show}}-s{{season:02d}}e{{episode:02d}}' with a "
            "lower-case show slug of letters, digits and single hyphens, e.g. 'rhobh-s05e14'"
        )
    return EpisodeId(m["show"], int(m["season"]), int(m["episode"]))


def validate_ep_id(ep_id: object) -> str:
    """Return ``ep_id`` unchanged when it is valid and in canonical form.

    Raises:
        InvalidEpIdError: when it does not parse, or is not canonical (``x-s01e007``).
    """
    parsed = parse_ep_id(ep_id)
    if parsed.ep_id != ep_id:
        raise InvalidEpIdError(
            f"invalid ep_id {ep_id!r}: write it as {parsed.ep_id!r} (two-digit season and episode)"
        )
    return parsed.ep_id


def validate_show(show: object) -> str:
    """Validate a show slug (lower-case letters, digits, single hyphens). Raises InvalidEpIdError."""
    if not isinstance(show, str) or not _SHOW_RE.match(show):
        raise InvalidEpIdError(
            f"invalid show slug {show!r}: use lower-case letters, digits and single hyphens, "
            "e.g. 'rhobh'"
        )
    return show
