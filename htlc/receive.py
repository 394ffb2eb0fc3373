"""What to do with an HTLC the peer offered us: a sans-IO decision (BOLT 4 "Accepting and forwarding a payment").

:func:`decide` takes an irrevocably committed incoming HTLC, the node key, the
chain height, the time and a way to look invoices up, and returns one of

- :class:`Fulfill`: we are the final node and the payment is good. The host
  first records it durably (``InvoiceRegistry.settle`` or, for a keysend,
  ``InvoiceRegistry.add_keysend``; nothing to write when ``replay``), *then*
  calls ``Channel.fulfill_htlc`` with the preimage.
- :class:`Fail`: ``update_fail_htlc`` with ``reason`` (an error onion, already
  made with ``create_failure`` + ``wrap_failure`` and the onion's shared secret).
- :class:`FailMalformed`: the onion itself is unusable (a BADONION failure):
  ``update_fail_malformed_htlc`` with ``sha256_of_onion`` and ``failure_code``.
- :class:`Hold`: the HTLC pays a hold invoice, or is one part of a
  multi-part payment: the host records it with ``InvoiceRegistry.accept_htlc``
  (nothing to write when ``replay``) and leaves it in the channel until the
  invoice is settled or canceled -- for a regular invoice, until the part that
  completes the set settles it (``accept_htlc`` returns it SETTLED) or the set
  times out (``InvoiceRegistry.expire_mpp_sets``); then it asks again for
  every held part, and the answer is a replayed Fulfill or a Fail
  (``mpp_timeout`` for a part of a set that timed out).

Rules, in order:

1. the onion must process with the node key and the ``payment_hash`` as
   associated data, else FailMalformed (``invalid_onion_version`` / ``_hmac``
   / ``_key``) -- or, if it authenticated but its payload is invalid, Fail
   with ``invalid_onion_payload``;
2. not the final hop: Fail with ``unknown_next_peer`` (forwarding to another
   channel is not implemented yet: Canal is the final hop or nothing);
3. ``amt_to_forward`` above the HTLC's amount: ``final_incorrect_htlc_amount``;
   ``outgoing_cltv_value`` above its ``cltv_expiry``: ``final_incorrect_cltv_expiry``;
4. keysend (record 5482373484 whose sha256 is the payment hash): accepted if
   the hash is unused and the CLTV leaves ``MIN_CLTV_EXPIRY_DELTA`` blocks;
5. otherwise the invoice must exist, be OPEN, not be expired, the
   ``payment_secret`` must match, and the HTLC expire no sooner than
   ``height + cltv_expiry``. A single-part payment (``total_msat`` not above
   the HTLC, no part held) must pay at least the invoice amount and is
   fulfilled at once. A part of a multi-part payment (BOLT 4 basic MPP; every
   invoice offers ``basic_mpp``, and a hold invoice's HTLCs always go this
   way) needs ``total_msat`` at least the invoice amount and equal to the
   held parts' ``total_msat``, and must not take the held parts above it.

Before 4, an HTLC that would push the channel's dust exposure over the limit
(``incoming_refusal``) fails with ``temporary_channel_failure``, as lnd's
link does. Any failure of 4 or 5 is ``incorrect_or_unknown_payment_details`` with
``htlc_msat`` and ``height`` (BOLT 4: the final node does not say which check
failed). An HTLC that already settled an invoice (a replay after a restart,
before the fulfill reached the channel) is fulfilled again; one that a hold
invoice holds is held again (Hold with ``replay``); one whose hold invoice was
canceled is failed; one whose MPP set timed out is failed with ``mpp_timeout``
(BOLT 4 code 23).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from base_chain.crypto import PrivateKey
from base_chain.hashes import sha256
from channels.effects import IncomingHtlc

from .failure import FailureCode, FailureMessage, create_failure, wrap_failure
from .invoices import MIN_CLTV_EXPIRY_DELTA, InvoiceRecord, InvoiceState
from .onion import OnionError, process_onion

__all__ = ["Decision", "Fail", "FailMalformed", "Fulfill", "Hold", "decide"]


@dataclass(frozen=True)
class Fulfill:
    """Settle with ``payment_preimage`` (after recording it; see the module docstring)."""

    htlc_id: int
    payment_hash: bytes
    payment_preimage: bytes
    amount_msat: int
    keysend: bool = False
    replay: bool = False
    mpp_total_msat: int = 0
    custom_records: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True)
class Fail:
    """``update_fail_htlc`` with ``reason``; ``failure`` and ``why`` are for logs and tests."""

    htlc_id: int
    reason: bytes
    failure: FailureMessage
    why: str


@dataclass(frozen=True)
class FailMalformed:
    """``update_fail_malformed_htlc``."""

    htlc_id: int
    sha256_of_onion: bytes
    failure_code: int
    why: str


@dataclass(frozen=True)
class Hold:
    """Keep the HTLC for a hold invoice (after ``InvoiceRegistry.accept_htlc``, unless ``replay``)."""

    htlc_id: int
    payment_hash: bytes
    amount_msat: int
    replay: bool = False
    mpp_total_msat: int = 0
    custom_records: tuple[tuple[int, bytes], ...] = ()


Decision = Fulfill | Fail | FailMalformed | Hold


def _fail(htlc: IncomingHtlc, shared_secret: bytes, failure: FailureMessage, why: str) -> Fail:
    reason = wrap_failure(shared_secret, create_failure(shared_secret, failure))
    return Fail(htlc.htlc_id, reason, failure, why)


def decide(
    htlc: IncomingHtlc,
    *,
    node_key: PrivateKey,
    height: int,
    now: int,
    lookup: Callable[[bytes], InvoiceRecord | None],
    incoming_refusal: str | None = None,
) -> Decision:
    """The fate of ``htlc`` at this node (see the module docstring).

    ``incoming_refusal``: why the channel cannot keep this HTLC (its dust exposure:
    ``channels.dust.incoming_dust_refusal``); a new payment is then failed with ``temporary_channel_failure``.
    """
    onion = htlc.onion_routing_packet
    try:
        processed = process_onion(node_key, onion, htlc.payment_hash, path_key=htlc.path_key)
    except ValueError as e:  # not 1366 bytes: the wire format forbids it, so treat it as unparsable
        return FailMalformed(htlc.htlc_id, sha256(onion), FailureCode.INVALID_ONION_VERSION, str(e))
    except OnionError as e:
        return _onion_failure(htlc, e)
    try:
        payload = processed.decode_payload(path_key_in_update=htlc.path_key is not None)
    except OnionError as e:
        return _onion_failure(htlc, e)
    ss = processed.shared_secret
    if not processed.is_final:
        return _fail(htlc, ss, FailureMessage(FailureCode.UNKNOWN_NEXT_PEER),
                     "forwarding is not implemented: this node is only ever the final hop")
    if payload.encrypted_recipient_data is not None:
        return FailMalformed(htlc.htlc_id, sha256(onion), FailureCode.INVALID_ONION_BLINDING,
                             "a blinded route ends here, but this node issues no blinded paths")
    amt = payload.amt_to_forward
    cltv = payload.outgoing_cltv_value
    assert amt is not None and cltv is not None  # the reader rules require both at a final node
    if amt > htlc.amount_msat:
        return _fail(htlc, ss, FailureMessage(FailureCode.FINAL_INCORRECT_HTLC_AMOUNT,
                                              incoming_htlc_amt=htlc.amount_msat),
                     f"amt_to_forward {amt} above the HTLC's {htlc.amount_msat} msat")
    if cltv > htlc.cltv_expiry:
        return _fail(htlc, ss, FailureMessage(FailureCode.FINAL_INCORRECT_CLTV_EXPIRY, cltv_expiry=htlc.cltv_expiry),
                     f"outgoing_cltv_value {cltv} above the HTLC's cltv_expiry {htlc.cltv_expiry}")

    def details(why: str) -> Fail:
        failure = FailureMessage(FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, htlc_msat=htlc.amount_msat,
                                 height=height)
        return _fail(htlc, ss, failure, why)

    invoice = lookup(htlc.payment_hash)
    if invoice is not None and invoice.state is InvoiceState.SETTLED and invoice.paid_by(htlc.channel_id, htlc.htlc_id):
        assert invoice.preimage is not None
        return Fulfill(htlc.htlc_id, htlc.payment_hash, invoice.preimage, htlc.amount_msat, invoice.is_keysend,
                       replay=True)

    if invoice is not None and invoice.holds(htlc.channel_id, htlc.htlc_id):
        return Hold(htlc.htlc_id, htlc.payment_hash, htlc.amount_msat, replay=True)

    if (invoice is not None and invoice.state is not InvoiceState.CANCELED
            and invoice.released(htlc.channel_id, htlc.htlc_id)):  # a regular or a hold invoice's incomplete set
        return _fail(htlc, ss, FailureMessage(FailureCode.MPP_TIMEOUT),
                     "the multi-part set was not complete in time")

    if incoming_refusal is not None:  # lnd's link: failed back, the channel stays up
        return _fail(htlc, ss, FailureMessage(FailureCode.TEMPORARY_CHANNEL_FAILURE, channel_update=b""),
                     incoming_refusal)

    if payload.keysend_preimage is not None:
        return _keysend(htlc, payload.keysend_preimage, payload.custom_records, invoice, height, details)

    if invoice is None:
        return details("no invoice for this payment hash")
    if invoice.state is not InvoiceState.OPEN:
        return details(f"invoice is {invoice.state.name.lower()}")
    if invoice.is_expired(now):
        return details("invoice expired")
    pd = payload.payment_data
    if pd is None:
        return details("no payment_secret in the onion (the invoice requires one)")
    if pd.payment_secret != invoice.payment_secret:
        return details("payment_secret does not match the invoice's")
    if invoice.is_hold or pd.total_msat > htlc.amount_msat or invoice.held_msat:
        return _hold(htlc, invoice, pd.total_msat, payload.custom_records, height, details)
    if htlc.amount_msat < invoice.value_msat:
        return details(f"underpaid: {htlc.amount_msat} msat for an invoice of {invoice.value_msat}")
    if htlc.cltv_expiry < height + invoice.cltv_expiry:
        return details(f"cltv_expiry {htlc.cltv_expiry} below height {height} + min_final_cltv {invoice.cltv_expiry}")
    assert invoice.preimage is not None
    return Fulfill(htlc.htlc_id, htlc.payment_hash, invoice.preimage, htlc.amount_msat,
                   mpp_total_msat=pd.total_msat, custom_records=payload.custom_records)


def _hold(
    htlc: IncomingHtlc,
    invoice: InvoiceRecord,
    total_msat: int,
    custom_records: tuple[tuple[int, bytes], ...],
    height: int,
    details: Callable[[str], Fail],
) -> Decision:
    total = total_msat or htlc.amount_msat
    if total < invoice.value_msat:
        return details(f"total_msat {total} below the invoice's {invoice.value_msat}")
    if invoice.held_msat and invoice.held_total_msat != total:
        return details(f"total_msat {total} differs from the held parts' {invoice.held_total_msat}")
    if invoice.held_msat + htlc.amount_msat > total:
        return details(f"part of {htlc.amount_msat} msat overpays the set: {invoice.held_msat} of {total} already held")
    if htlc.cltv_expiry < height + invoice.cltv_expiry:
        return details(f"cltv_expiry {htlc.cltv_expiry} below height {height} + min_final_cltv {invoice.cltv_expiry}")
    return Hold(htlc.htlc_id, htlc.payment_hash, htlc.amount_msat, mpp_total_msat=total_msat,
                custom_records=custom_records)


def _keysend(
    htlc: IncomingHtlc,
    preimage: bytes,
    custom_records: tuple[tuple[int, bytes], ...],
    existing: InvoiceRecord | None,
    height: int,
    details: Callable[[str], Fail],
) -> Decision:
    if sha256(preimage) != htlc.payment_hash:
        return details("keysend preimage does not hash to the payment hash")
    if existing is not None:
        return details("keysend to a payment hash already in use")
    if htlc.cltv_expiry < height + MIN_CLTV_EXPIRY_DELTA:
        return details(f"cltv_expiry {htlc.cltv_expiry} below height {height} + {MIN_CLTV_EXPIRY_DELTA}")
    return Fulfill(htlc.htlc_id, htlc.payment_hash, preimage, htlc.amount_msat, keysend=True,
                   custom_records=custom_records)


def _onion_failure(htlc: IncomingHtlc, e: OnionError) -> Decision:
    if e.is_malformed:
        sha = e.failure.sha256_of_onion or sha256(htlc.onion_routing_packet)
        return FailMalformed(htlc.htlc_id, sha, e.failure.code, e.reason)
    if e.shared_secret is None:  # an invalid payload is only found after the HMAC checked out: cannot happen
        return FailMalformed(htlc.htlc_id, sha256(htlc.onion_routing_packet), FailureCode.INVALID_ONION_HMAC, e.reason)
    return _fail(htlc, e.shared_secret, e.failure, e.reason)
