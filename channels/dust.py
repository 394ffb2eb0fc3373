"""Dust HTLC exposure (BOLT 2 ``max_dust_htlc_exposure_msat``).

A trimmed (dust) HTLC has no output in the commitment transaction: its amount
goes to the miners if that commitment confirms, so a peer (or a miner working
with it) can make us lose every dust HTLC in flight. We bound the total: an
HTLC we would offer is refused when the dust HTLCs of either commitment (ours
and the peer's, each trimmed with its owner's dust limit) would pass the limit.

The default is lnd's (``dust-threshold``, now ``channel-max-fee-exposure``):
500,000 sat.
"""

from __future__ import annotations

from collections.abc import Sequence

from .specs import Htlc, Spec
from .transactions import ChannelType, htlc_is_trimmed

__all__ = ["DEFAULT_MAX_DUST_HTLC_EXPOSURE_MSAT", "MAX_DUST_HTLC_EXPOSURE_MSAT", "dust_exposure_msat",
           "check_dust_exposure"]

DEFAULT_MAX_DUST_HTLC_EXPOSURE_MSAT = 500_000_000
#: The node-wide limit the channels apply (a process setting; tests lower it).
MAX_DUST_HTLC_EXPOSURE_MSAT = DEFAULT_MAX_DUST_HTLC_EXPOSURE_MSAT


def dust_exposure_msat(spec: Spec, dust_limit_sat: int, channel_type: ChannelType, extra: Sequence[Htlc] = ()) -> int:
    """The sum of the HTLCs of `spec` (both directions, and `extra` ones) trimmed in that commitment."""
    rate = spec.feerate_per_kw
    return sum(h.amount_msat for h in (*spec.htlcs, *extra)
               if htlc_is_trimmed(h.commitment_htlc(), rate, dust_limit_sat, channel_type))


def check_dust_exposure(
    local_spec: Spec, local_dust_limit_sat: int, remote_spec: Spec, remote_dust_limit_sat: int,
    channel_type: ChannelType, limit_msat: int | None = None,
    local_extra: Sequence[Htlc] = (),
) -> str | None:
    """Why the commitments (with the new HTLC: in `remote_spec` already, `local_extra` for ours)
    expose too much dust; None when they do not. `limit_msat` defaults to MAX_DUST_HTLC_EXPOSURE_MSAT."""
    limit = MAX_DUST_HTLC_EXPOSURE_MSAT if limit_msat is None else limit_msat
    for whose, spec, dust_limit, extra in (("our", local_spec, local_dust_limit_sat, local_extra),
                                           ("the peer's", remote_spec, remote_dust_limit_sat, ())):
        exposure = dust_exposure_msat(spec, dust_limit, channel_type, extra)
        if exposure > limit:
            return (f"dust HTLC exposure on {whose} commitment would be {exposure} msat, "
                    f"over max_dust_htlc_exposure_msat {limit}")
    return None
