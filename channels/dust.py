"""Dust HTLC exposure (BOLT 2 ``max_dust_htlc_exposure_msat``).

A trimmed (dust) HTLC has no output in the commitment transaction: its amount
goes to the miners if that commitment confirms, so a peer (or a miner working
with it) can make us lose every dust HTLC in flight. We bound the total: an
HTLC we would offer is refused when the dust HTLCs of either commitment (ours
and the peer's, each trimmed with its owner's dust limit) would pass the limit.

The same limit applies to HTLCs we receive (:func:`incoming_dust_refusal`), as
lnd's link does it: the peer may add them (the channel takes them, no
protocol rule is broken), but one that is trimmed in a commitment whose dust
would then pass the limit is failed back by the node with
``temporary_channel_failure`` instead of being forwarded or accepted.

The default is lnd's (``dust-threshold``, now ``channel-max-fee-exposure``):
500,000 sat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from .messages import UpdateAddHtlc, UpdateFee
from .specs import Htlc, Spec
from .transactions import ChannelType, HtlcDirection, htlc_is_trimmed, htlc_success_fee_sat, htlc_timeout_fee_sat

if TYPE_CHECKING:
    from .htlcs import Commitments

__all__ = ["DEFAULT_MAX_DUST_HTLC_EXPOSURE_MSAT", "MAX_DUST_HTLC_EXPOSURE_MSAT", "dust_exposure_msat",
           "check_dust_exposure", "incoming_dust_refusal"]

DEFAULT_MAX_DUST_HTLC_EXPOSURE_MSAT = 500_000_000
#: The node-wide limit the channels apply (a process setting; tests lower it).
MAX_DUST_HTLC_EXPOSURE_MSAT = DEFAULT_MAX_DUST_HTLC_EXPOSURE_MSAT


def dust_exposure_msat(spec: Spec, dust_limit_sat: int, channel_type: ChannelType, extra: Sequence[Htlc] = ()) -> int:
    """The sum of the HTLCs of `spec` (both directions, and `extra` ones) trimmed in that commitment."""
    rate = spec.feerate_per_kw
    # htlc_is_trimmed, one threshold per direction: amount_msat // 1000 < n  <=>  amount_msat < n * 1000
    offered_min = (dust_limit_sat + htlc_timeout_fee_sat(rate, channel_type)) * 1000
    received_min = (dust_limit_sat + htlc_success_fee_sat(rate, channel_type)) * 1000
    return sum(a for h in (*spec.htlcs, *extra)
               if (a := h.add.amount_msat) < (offered_min if h.direction is HtlcDirection.OFFERED else received_min))


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


def incoming_dust_refusal(commitments: Commitments, htlc_id: int, limit_msat: int | None = None) -> str | None:
    """Why the peer's HTLC ``htlc_id`` (irrevocably committed) must be failed back for dust exposure; None if not.

    In each commitment (its next state: ours with the peer's updates, the peer's with ours) where that HTLC
    is trimmed, the dust of our HTLCs to the peer, of the peer's HTLCs decided before it (lower ids) and of
    itself must stay within the limit. The peer's later HTLCs are judged in their turn, and those we are
    already failing or fulfilling are leaving. `limit_msat` defaults to MAX_DUST_HTLC_EXPOSURE_MSAT.
    """
    c = commitments
    limit = MAX_DUST_HTLC_EXPOSURE_MSAT if limit_msat is None else limit_msat
    leaving = {u.id for u in c.local_changes.all() if not isinstance(u, (UpdateAddHtlc, UpdateFee))}
    p = c.params
    for whose, spec, dust_limit, theirs in (
        ("our", c._local_view(), p.local.dust_limit_sat, HtlcDirection.RECEIVED),
        ("the peer's", c._remote_view(), p.remote.dust_limit_sat, HtlcDirection.OFFERED),
    ):
        rate = spec.feerate_per_kw
        this = spec.find(theirs, htlc_id)
        if this is None or not htlc_is_trimmed(this.commitment_htlc(), rate, dust_limit, c.params.channel_type):
            continue
        counted = [h for h in spec.htlcs if h.direction is not theirs or (h.id < htlc_id and h.id not in leaving)]
        exposure = dust_exposure_msat(replace(spec, htlcs=()), dust_limit, p.channel_type, (*counted, this))
        if exposure > limit:
            return (f"incoming HTLC {htlc_id} of {this.amount_msat} msat is dust: exposure on {whose} commitment "
                    f"would be {exposure} msat, over max_dust_htlc_exposure_msat {limit}")
    return None
