"""BOLT 2 "Message Retransmission": what to resend after ``channel_reestablish``, and data-loss detection.

:func:`plan_retransmission` compares the peer's ``channel_reestablish`` with our
commitment chains (option_data_loss_protect semantics) and returns the
``revoke_and_ack`` / ``commitment_signed`` (with the updates it signed) to
send again, in the order they were first sent. It raises
:class:`~channels.effects.CloseChannel` when a side has lost state:

* the peer proves it holds a revocation of a commitment we do not know
  (``next_revocation_number`` ahead of us and ``your_last_per_commitment_secret``
  is our real secret): **we** are behind, ``broadcast=False`` -- publishing our
  commitment would hand the peer every satoshi; we ask it to close instead;
* the peer claims commitments from us that we never signed: we may be behind,
  ``broadcast=False`` as well;
* the peer is behind (numbers lower than anything we could have sent, or a
  wrong secret): fail the channel and broadcast our (safe) latest commitment.
"""

from __future__ import annotations

from .effects import CloseChannel
from .htlcs import Commitments
from .keys import ChannelSecrets, per_commitment_index
from .messages import ChannelReestablish
from .wire import Message

__all__ = ["reestablish_message", "plan_retransmission"]


def reestablish_message(c: Commitments, secrets: ChannelSecrets) -> ChannelReestablish:
    """Our ``channel_reestablish``: the next commitment and revocation we expect, and the data-loss proof."""
    local_index, remote_index = c.local_commit.index, c.remote_commit.index
    last_secret = bytes(32)
    if remote_index > 0:
        last_secret = c.remote_secrets.derive_old_secret(per_commitment_index(remote_index - 1))
    return ChannelReestablish(
        c.channel_id,
        next_commitment_number=local_index + 1,
        next_revocation_number=remote_index,
        your_last_per_commitment_secret=last_secret,
        my_current_per_commitment_point=secrets.per_commitment_point(local_index),
    )


def plan_retransmission(c: Commitments, secrets: ChannelSecrets, msg: ChannelReestablish) -> list[Message]:
    local_index = c.local_commit.index  # our current commitment; we revoked local_index - 1
    ncn, nrn = msg.next_commitment_number, msg.next_revocation_number

    # --- are we behind? (the peer has revocations of commitments we never had)
    if nrn > local_index:
        if msg.your_last_per_commitment_secret == secrets.per_commitment_secret(nrn - 1):
            raise CloseChannel(
                f"we have fallen behind (peer expects revocation {nrn}, our commitment is {local_index}): "
                "please force-close the channel",
                broadcast=False,
            )
        raise CloseChannel(
            f"next_revocation_number {nrn} is ahead of our commitment {local_index} without proof", broadcast=False
        )
    expected_secret = bytes(32) if nrn == 0 else secrets.per_commitment_secret(nrn - 1)
    if msg.your_last_per_commitment_secret != expected_secret:
        raise CloseChannel(f"your_last_per_commitment_secret is wrong for next_revocation_number {nrn}")

    # --- revoke_and_ack: did the peer get our last one?
    if local_index > 0 and nrn == local_index - 1:
        resend_revoke = True
    elif nrn == local_index:
        resend_revoke = False
    else:
        raise CloseChannel(f"peer lost data: next_revocation_number {nrn}, we revoked up to {local_index - 1}")

    # --- commitment_signed: did the peer get our last one?
    resend_commit = False
    if c.next_remote is not None:
        pending = c.next_remote.commit.index
        if ncn == pending:
            resend_commit = True
        elif ncn != pending + 1:
            _commit_mismatch(ncn, pending + 1)
    elif ncn != c.remote_commit.index + 1:
        _commit_mismatch(ncn, c.remote_commit.index + 1)

    out: list[Message] = []
    commit_part: list[Message] = []
    if resend_commit:
        assert c.next_remote is not None
        commit_part = [*c.local_changes.signed, c.next_remote.sent]
    revoke_part: list[Message] = [c.last_revocation()] if resend_revoke else []
    if c.last_sent == "commit":  # the commitment_signed went out after the revoke_and_ack
        out = revoke_part + commit_part
    else:
        out = commit_part + revoke_part
    return out


def _commit_mismatch(ncn: int, expected: int) -> None:
    if ncn > expected:
        raise CloseChannel(
            f"peer expects commitment {ncn} from us, we signed up to {expected - 1}: we may have lost data",
            broadcast=False,
        )
    raise CloseChannel(f"peer lost data: next_commitment_number {ncn}, expected {expected}")
