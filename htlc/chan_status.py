"""Channel status: when to announce our public channels disabled or enabled (sans-IO; lnd's ChanStatusManager).

A public channel whose peer has been disconnected for ``disable_timeout_s`` is
announced disabled (a fresh ``channel_update`` with the ``disable`` bit); once
the peer is back and has stayed connected for ``enable_timeout_s``, enabled
again. ``UpdateChanStatus`` (lncli ``updatechanstatus``) can disable a channel
by hand: a manual disable sticks until a manual ``enable`` or ``auto``.

No clock and no I/O here: the host feeds events with their time and carries
out the :class:`Announce` s returned (sign and gossip the update)::

    status = ChanStatusManager(ChanStatusConfig(disable_timeout_s=1200, enable_timeout_s=1140))
    status.track(channel_point, peer, announced_disabled=False, connected=False, now=now)
    status.peer_changed(peer, connected=False, now=t)   # -> []
    status.tick(t + 1200)                               # -> [Announce(channel_point, disabled=True)]

A channel is in one of four states (lnd's names):

==================  ========================================  =================================
state               what we last announced                    what changes it
==================  ========================================  =================================
ENABLED             enabled                                   peer down -> PENDING_DISABLED
PENDING_DISABLED    enabled; disable due at ``due``           peer up -> ENABLED; due -> DISABLED
DISABLED            disabled; enable due at ``due`` if set    peer up (+enable timeout) -> ENABLED
MANUALLY_DISABLED   disabled                                  manual enable / auto only
==================  ========================================  =================================
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "DEFAULT_DISABLE_TIMEOUT_S",
    "DEFAULT_ENABLE_TIMEOUT_S",
    "DEFAULT_SAMPLE_INTERVAL_S",
    "Announce",
    "ChanStatus",
    "ChanStatusAction",
    "ChanStatusConfig",
    "ChanStatusError",
    "ChanStatusManager",
    "NotTracked",
    "parse_duration",
]

DEFAULT_DISABLE_TIMEOUT_S = 20 * 60.0
"""lnd's ``--chan-disable-timeout`` (20m)."""
DEFAULT_ENABLE_TIMEOUT_S = 19 * 60.0
"""lnd's ``--chan-enable-timeout`` (19m)."""
DEFAULT_SAMPLE_INTERVAL_S = 60.0
"""lnd's ``--chan-status-sample-interval`` (1m): how often the host calls :meth:`ChanStatusManager.tick`."""


class ChanStatusError(Exception):
    """A request that cannot be carried out (``reason`` says why, as lnd words it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotTracked(ChanStatusError):
    """The channel is not one of our announced public channels."""


class ChanStatus(Enum):
    ENABLED = "enabled"
    PENDING_DISABLED = "pending_disabled"
    DISABLED = "disabled"
    MANUALLY_DISABLED = "manually_disabled"


class ChanStatusAction(Enum):
    """routerrpc.ChanStatusAction (same numbers)."""

    ENABLE = 0
    DISABLE = 1
    AUTO = 2


@dataclass(frozen=True)
class ChanStatusConfig:
    disable_timeout_s: float = DEFAULT_DISABLE_TIMEOUT_S
    enable_timeout_s: float = DEFAULT_ENABLE_TIMEOUT_S
    sample_interval_s: float = DEFAULT_SAMPLE_INTERVAL_S

    def __post_init__(self) -> None:
        # lnd's ErrInvalidTimeoutConstraints
        if min(self.disable_timeout_s, self.enable_timeout_s, self.sample_interval_s) <= 0 or (
                self.enable_timeout_s + self.sample_interval_s > self.disable_timeout_s):
            raise ChanStatusError("chan-enable-timeout + chan-status-sample-interval must <= chan-disable-timeout "
                                  "and all three chan configs must be positive")


@dataclass(frozen=True)
class Announce:
    """Sign and gossip a fresh channel_update of ``channel_point`` with the disable bit as ``disabled`` says."""

    channel_point: str
    disabled: bool


@dataclass
class _Channel:
    peer: str
    status: ChanStatus
    due: float | None = None
    """PENDING_DISABLED: when the disable goes out; DISABLED: when the enable goes out (None: not scheduled)."""


class ChanStatusManager:
    """The status of our public channels (see the module docstring). Times are seconds on any one clock."""

    def __init__(self, config: ChanStatusConfig | None = None) -> None:
        self.config = ChanStatusConfig() if config is None else config
        self._channels: dict[str, _Channel] = {}
        self._online: dict[str, float] = {}
        """Connected peers and since when."""

    # --- reads ------------------------------------------------------------------------------------------------

    def status(self, channel_point: str) -> ChanStatus | None:
        ch = self._channels.get(channel_point)
        return None if ch is None else ch.status

    def announced_disabled(self, channel_point: str) -> bool:
        """What our channel_update of the channel should say (False for a channel not tracked)."""
        ch = self._channels.get(channel_point)
        return ch is not None and ch.status in (ChanStatus.DISABLED, ChanStatus.MANUALLY_DISABLED)

    def __contains__(self, channel_point: object) -> bool:
        return channel_point in self._channels

    def channel_points(self) -> list[str]:
        return sorted(self._channels)

    # --- events -----------------------------------------------------------------------------------------------

    def track(self, channel_point: str, peer: str, announced_disabled: bool, now: float,
              manually_disabled: bool = False) -> None:
        """Follow a public channel whose channel_update is out (says ``announced_disabled``); no-op if followed."""
        if channel_point in self._channels:
            return
        if manually_disabled:
            self._channels[channel_point] = _Channel(peer, ChanStatus.MANUALLY_DISABLED)
        elif announced_disabled:
            self._channels[channel_point] = _Channel(peer, ChanStatus.DISABLED, self._enable_due(peer, now))
        elif peer in self._online:
            self._channels[channel_point] = _Channel(peer, ChanStatus.ENABLED)
        else:
            self._channels[channel_point] = _Channel(peer, ChanStatus.PENDING_DISABLED,
                                                     now + self.config.disable_timeout_s)

    def forget(self, channel_point: str) -> None:
        """The channel is closing or closed: no more status updates for it."""
        self._channels.pop(channel_point, None)

    def peer_changed(self, peer: str, connected: bool, now: float) -> list[Announce]:
        """A peer connected or disconnected at ``now``. Nothing is announced at once: see :meth:`tick`."""
        if connected:
            self._online.setdefault(peer, now)
        else:
            self._online.pop(peer, None)
        for ch in self._channels.values():
            if ch.peer != peer:
                continue
            if connected:
                if ch.status is ChanStatus.PENDING_DISABLED:
                    ch.status, ch.due = ChanStatus.ENABLED, None  # back in time: nothing to announce
                elif ch.status is ChanStatus.DISABLED:
                    ch.due = now + self.config.enable_timeout_s
            else:
                if ch.status is ChanStatus.ENABLED:
                    ch.status, ch.due = ChanStatus.PENDING_DISABLED, now + self.config.disable_timeout_s
                elif ch.status is ChanStatus.DISABLED:
                    ch.due = None  # gone before the enable was due
        return []

    def tick(self, now: float) -> list[Announce]:
        """What is due at ``now``: disables of channels whose peer stayed away, enables of those whose came back."""
        out: list[Announce] = []
        for cp, ch in sorted(self._channels.items()):
            if ch.due is None or ch.due > now:
                continue
            if ch.status is ChanStatus.PENDING_DISABLED:
                ch.status, ch.due = ChanStatus.DISABLED, None
                out.append(Announce(cp, True))
            elif ch.status is ChanStatus.DISABLED and ch.peer in self._online:
                ch.status, ch.due = ChanStatus.ENABLED, None
                out.append(Announce(cp, False))
        return out

    def request(self, channel_point: str, action: ChanStatusAction, now: float) -> list[Announce]:
        """``UpdateChanStatus``: a manual enable, disable or auto (raises :class:`ChanStatusError`)."""
        ch = self._channels.get(channel_point)
        if ch is None:
            raise NotTracked(f"channel {channel_point} is not an announced public channel of ours")
        if action is ChanStatusAction.DISABLE:
            was = ch.status
            ch.status, ch.due = ChanStatus.MANUALLY_DISABLED, None
            return [Announce(channel_point, True)] if was in (ChanStatus.ENABLED, ChanStatus.PENDING_DISABLED) else []
        if action is ChanStatusAction.ENABLE:
            if ch.peer not in self._online:
                raise ChanStatusError("unable to enable channel which is not currently active")
            was = ch.status
            ch.status, ch.due = ChanStatus.ENABLED, None
            return [Announce(channel_point, False)] if was in (ChanStatus.DISABLED, ChanStatus.MANUALLY_DISABLED) else []
        if ch.status is ChanStatus.MANUALLY_DISABLED:  # AUTO: back to automatic control
            ch.status, ch.due = ChanStatus.DISABLED, self._enable_due(ch.peer, now)
        return []

    def _enable_due(self, peer: str, now: float) -> float | None:
        since = self._online.get(peer)
        return None if since is None else max(since + self.config.enable_timeout_s, now)


_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|h|m|s)")


def parse_duration(text: str) -> float:
    """Seconds from a Go duration as lnd's flags take them ("20m", "1m30s", "500ms"); a bare number is seconds."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ValueError(f"invalid duration {text!r}")
        return seconds
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r} (e.g. 20m, 90s, 1m30s)")
    return total
