"""Episode ids: ``{show}-s{season:02d}e{episode:02d}``, e.g. ``rhobh-s05e14``.

An ep_id becomes part of file paths and S3 keys, so it is validated wherever it enters (CLI,
sensor, partition keys) before it is used. The show slug is lower-case ASCII letters and digits,
optionally joined by single hyphens; it can never contain ``/``, ``.`` or whitespace, is at most
:data:`MAX_SHOW_LEN` characters (so an ep_id fits in one file name and one S3 key segment), and is
never itself an ep_id (``x-s01e01`` as a show would make ``x-s01e01-s01e02`` look like an episode
of show ``x``'s season 1 to anything that reads the ep_id as text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidEpIdError

EP_ID_PATTERN = r"(?P<show>[a-z0-9]+(?:-[a-z0-9]+)*)-s(?P<season>\d{2})e(?P<episode>\d{2,3})"
_EP_ID_RE = re.compile(rf"^{EP_ID_PATTERN}$")
_SHOW_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

MAX_SHOW_LEN = 48
"""Longest show slug (characters)."""
MAX_EP_ID_LEN = MAX_SHOW_LEN + len("-s00e000")
"""Longest ep_id (characters): a show slug of :data:`MAX_SHOW_LEN` and ``-sNNeNNN``."""


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
            lower-case slug, e.g. ``../x``, ``RHOBH-s05e14`` or ``my show-s01e01``; is longer than
            :data:`MAX_EP_ID_LEN`; or its show slug is itself an ep_id (``x-s01e01-s01e02``).
    """
    if isinstance(ep_id, str) and len(ep_id) > MAX_EP_ID_LEN:
        raise InvalidEpIdError(
            f"invalid ep_id {ep_id[:40]!r}... ({len(ep_id)} characters): an ep_id is at most "
            f"{MAX_EP_ID_LEN} characters (a show slug of at most {MAX_SHOW_LEN}); use a shorter "
            "show slug, e.g. 'rhobh-s05e14'")
    if not isinstance(ep_id, str) or not (m := _EP_ID_RE.match(ep_id)):
        raise InvalidEpIdError(
            f"invalid ep_id {ep_id!r}: expected '{{show}}-s{{season:02d}}e{{episode:02d}}' with a "
            "lower-case show slug of letters, digits and single hyphens, e.g. 'rhobh-s05e14'"
        )
    try:
        validate_show(m["show"])
    except InvalidEpIdError as exc:
        raise InvalidEpIdError(f"invalid ep_id {ep_id!r}: {exc}") from None
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
    """Validate a show slug: lower-case letters, digits, single hyphens, at most
    :data:`MAX_SHOW_LEN` characters, and not itself an ep_id (``x-s01e01``).

    Raises:
        InvalidEpIdError: naming the slug and the rule it breaks.
    """
    if isinstance(show, str) and len(show) > MAX_SHOW_LEN:
        raise InvalidEpIdError(
            f"invalid show slug {show[:40]!r}... ({len(show)} characters): a show slug is at most "
            f"{MAX_SHOW_LEN} characters")
    if not isinstance(show, str) or not _SHOW_RE.match(show):
        raise InvalidEpIdError(
            f"invalid show slug {show!r}: use lower-case letters, digits and single hyphens, "
            "e.g. 'rhobh'"
        )
    if _EP_ID_RE.match(show):
        raise InvalidEpIdError(
            f"invalid show slug {show!r}: it is itself an episode id, so its episodes could be "
            "mistaken for another show's; drop the '-sNNeNN' part, e.g. 'rhobh'")
    return show
