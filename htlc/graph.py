"""The channel graph: every announced channel direction with its BOLT 7 policy, in compact arrays.

A *directed channel* (an "edge") is one direction of a channel: the policy that
`source` announced in its `channel_update` for forwarding towards `target`.
BOLT 7's `direction` bit is 0 when `source` is `node_id_1`, the numerically
lesser of the two compressed public keys, and 1 otherwise; an edge is named by
`(short_channel_id, direction)`.

Node ids (33-byte compressed public keys, or any bytes in hand-made graphs) are
interned to small ints. Per edge the graph keeps, in `array`s indexed by an
edge number: source, target, short_channel_id, capacity_sat, fee_base_msat,
fee_proportional_millionths, cltv_expiry_delta, htlc_minimum_msat,
htlc_maximum_msat, disabled, last_update. Adjacency is kept by target (for the
backward search of `htlc.pathfind`) and by source. For the search, each node
also gets lazily built, cached tuples of its usable edges (`search_edges`:
into it, `forward_edges`: out of it), dropped when a channel around it
changes. Nodes stay interned when their channels go.

    graph = ChannelGraph()
    graph.add_channel(a, b, parse_short_channel_id("700000x1x0"), capacity_sat=1_000_000,
                      fee_base_msat=1000, fee_proportional_millionths=100, cltv_expiry_delta=40)
    graph.update_policy(scid, a, fee_base_msat=0, last_update=1700000000)
    graph.disable(scid, a)
    graph.remove_channel(scid)

Loaders read the shared real graphs: `load_listchannels_json` (Core Lightning
`listchannels` JSON, plain or `.xz`) and `load_gossmap` (the
"GOSSMAP_COMPRESSv1" format of Core Lightning's devtools/gossmap-compress.c).

The graph is plain data: no I/O except in the loaders, no clock.
"""

from __future__ import annotations

import gzip
import json
import lzma
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .invoice import format_short_channel_id, parse_short_channel_id

__all__ = [
    "ChannelGraph",
    "ChannelPolicy",
    "GraphError",
    "SearchEdge",
    "channel_direction",
    "format_short_channel_id",
    "load_gossmap",
    "load_listchannels_json",
    "parse_short_channel_id",
    "short_channel_id_from_parts",
    "short_channel_id_parts",
]

_U16 = (1 << 16) - 1
_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1

SearchEdge = tuple[int, int, int, int, int, int, int, int]
"""One usable edge into a node, as the path search reads it:
`(source_index, edge_key, fee_base_msat, fee_proportional_millionths,
cltv_expiry_delta, htlc_minimum_msat, max_htlc_msat, capacity_msat)` where
`edge_key = short_channel_id << 1 | direction` and `max_htlc_msat` is
htlc_maximum_msat capped at the capacity (when the capacity is known)."""


def _by_max_htlc(edge: SearchEdge) -> int:
    return -edge[6]


class GraphError(ValueError):
    """A channel or policy the graph cannot hold (names the field and value)."""


def short_channel_id_parts(short_channel_id: int) -> tuple[int, int, int]:
    """(block height, transaction index, output index) of a 64-bit short_channel_id."""
    if not 0 <= short_channel_id <= _U64:
        raise GraphError(f"short_channel_id out of range: {short_channel_id}")
    return short_channel_id >> 40, (short_channel_id >> 16) & 0xFFFFFF, short_channel_id & 0xFFFF


def short_channel_id_from_parts(block: int, tx_index: int, output_index: int) -> int:
    """The 64-bit short_channel_id of (block height, transaction index, output index)."""
    if not (0 <= block < 1 << 24 and 0 <= tx_index < 1 << 24 and 0 <= output_index < 1 << 16):
        raise GraphError(f"short_channel_id part out of range: {block}x{tx_index}x{output_index}")
    return (block << 40) | (tx_index << 16) | output_index


def channel_direction(source: bytes, target: bytes) -> int:
    """BOLT 7 `direction`: 0 when `source` is node_id_1 (the lesser node id), else 1."""
    return 0 if source < target else 1


@dataclass(frozen=True, slots=True)
class ChannelPolicy:
    """A read-only view of one directed channel."""

    source: bytes
    target: bytes
    short_channel_id: int
    capacity_sat: int
    fee_base_msat: int
    fee_proportional_millionths: int
    cltv_expiry_delta: int
    htlc_minimum_msat: int
    htlc_maximum_msat: int
    disabled: bool
    last_update: int

    @property
    def direction(self) -> int:
        return channel_direction(self.source, self.target)

    def fee_msat(self, amount_to_forward_msat: int) -> int:
        """BOLT 7 fee for forwarding `amount_to_forward_msat` over this channel."""
        return self.fee_base_msat + amount_to_forward_msat * self.fee_proportional_millionths // 1_000_000


def _check(name: str, value: int, high: int) -> int:
    if not isinstance(value, int) or not 0 <= value <= high:
        raise GraphError(f"{name} out of range: {value!r}")
    return value


def _validate(
    fee_base_msat: int,
    fee_proportional_millionths: int,
    cltv_expiry_delta: int,
    htlc_minimum_msat: int,
    htlc_maximum_msat: int,
    last_update: int,
) -> None:
    """Range-check a policy (one chained comparison on the fast path; names the field on failure)."""
    if (
        0 <= fee_base_msat <= _U32
        and 0 <= fee_proportional_millionths <= _U32
        and 0 <= cltv_expiry_delta <= _U16
        and 0 <= htlc_minimum_msat <= _U64
        and 0 <= htlc_maximum_msat <= _U64
        and 0 <= last_update <= _U32
        and type(fee_base_msat) is int
        and type(fee_proportional_millionths) is int
        and type(cltv_expiry_delta) is int
        and type(htlc_minimum_msat) is int
        and type(htlc_maximum_msat) is int
        and type(last_update) is int
    ):
        return
    for name, value, high in (
        ("fee_base_msat", fee_base_msat, _U32),
        ("fee_proportional_millionths", fee_proportional_millionths, _U32),
        ("cltv_expiry_delta", cltv_expiry_delta, _U16),
        ("htlc_minimum_msat", htlc_minimum_msat, _U64),
        ("htlc_maximum_msat", htlc_maximum_msat, _U64),
        ("last_update", last_update, _U32),
    ):
        _check(name, value, high)


class ChannelGraph:
    """Directed channels in parallel arrays, nodes interned to ints."""

    def __init__(self) -> None:
        self._node_ids: list[bytes] = []
        self._node_index: dict[bytes, int] = {}
        self._in: list[list[int]] = []  # node -> edges whose target it is
        self._out: list[list[int]] = []  # node -> edges whose source it is
        self._by_key: dict[int, int] = {}  # short_channel_id << 1 | direction -> edge
        self._source = array("i")
        self._target = array("i")
        self._scid = array("Q")
        self._capacity_sat = array("Q")
        self._fee_base_msat = array("I")
        self._fee_proportional_millionths = array("I")
        self._cltv_expiry_delta = array("H")
        self._htlc_minimum_msat = array("Q")
        self._htlc_maximum_msat = array("Q")
        self._last_update = array("I")
        self._disabled = bytearray()
        self._free: list[int] = []  # removed edge slots, reused by add_channel
        self._view: list[list[SearchEdge] | None] = []  # per target, built lazily for the search
        self._fview: list[list[SearchEdge] | None] = []  # per source, likewise
        self._scids: dict[int, int] = {}  # short_channel_id -> live directions
        self._views_built = False
        self.version = 0
        """Bumped by every change (callers may cache what they derive from the graph)."""

    # -- nodes -----------------------------------------------------------------

    @property
    def node_count(self) -> int:
        return len(self._node_ids)

    @property
    def edge_count(self) -> int:
        """Directed channels held (enabled or not)."""
        return len(self._by_key)

    @property
    def channel_count(self) -> int:
        """Distinct short_channel_ids with at least one direction."""
        return len(self._scids)

    def intern(self, node_id: bytes) -> int:
        """The int of `node_id`, adding the node if it is new."""
        index = self._node_index.get(node_id)
        if index is None:
            if not isinstance(node_id, bytes) or not node_id:
                raise GraphError(f"node id must be non-empty bytes, not {node_id!r}")
            index = len(self._node_ids)
            self._node_ids.append(node_id)
            self._node_index[node_id] = index
            self._in.append([])
            self._out.append([])
            self._view.append(None)
            self._fview.append(None)
        return index

    def node_index(self, node_id: bytes) -> int | None:
        return self._node_index.get(node_id)

    def node_id(self, index: int) -> bytes:
        return self._node_ids[index]

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._node_index

    def nodes(self) -> list[bytes]:
        return list(self._node_ids)

    def degree(self, node_id: bytes) -> int:
        """Directed channels leaving or entering the node."""
        index = self._node_index.get(node_id)
        return 0 if index is None else len(self._in[index]) + len(self._out[index])

    # -- edits -----------------------------------------------------------------

    def add_channel(
        self,
        source: bytes,
        target: bytes,
        short_channel_id: int,
        *,
        capacity_sat: int,
        fee_base_msat: int = 1000,
        fee_proportional_millionths: int = 1,
        cltv_expiry_delta: int = 40,
        htlc_minimum_msat: int = 0,
        htlc_maximum_msat: int | None = None,
        disabled: bool = False,
        last_update: int = 0,
    ) -> int:
        """Add (or replace) the direction `source` -> `target` of a channel; returns its edge number.

        `htlc_maximum_msat` defaults to the capacity. A direction that already
        exists is overwritten whatever its last_update (use `update_policy` for
        gossip, which keeps the newer one).
        """
        if source == target:
            raise GraphError("a channel needs two distinct nodes")
        _check("short_channel_id", short_channel_id, _U64)
        _check("capacity_sat", capacity_sat, _U64 // 1000)
        if htlc_maximum_msat is None:
            htlc_maximum_msat = capacity_sat * 1000
        _validate(
            fee_base_msat, fee_proportional_millionths, cltv_expiry_delta,
            htlc_minimum_msat, htlc_maximum_msat, last_update,
        )  # fmt: skip
        key = short_channel_id << 1 | channel_direction(source, target)
        for known in (self._by_key.get(key), self._by_key.get(key ^ 1)):
            if known is not None and {self._node_ids[self._source[known]], self._node_ids[self._target[known]]} != {
                source,
                target,
            }:
                raise GraphError(f"channel {format_short_channel_id(short_channel_id)} already joins other nodes")
        edge = self._by_key.get(key)
        if edge is not None:
            self._capacity_sat[edge] = capacity_sat
            self._set_policy(
                edge, fee_base_msat, fee_proportional_millionths, cltv_expiry_delta,
                htlc_minimum_msat, htlc_maximum_msat, disabled, last_update,
            )  # fmt: skip
            self._touch(edge)
            return edge
        s, t = self.intern(source), self.intern(target)
        if self._free:
            edge = self._free.pop()
            self._source[edge], self._target[edge], self._scid[edge] = s, t, short_channel_id
            self._capacity_sat[edge] = capacity_sat
            self._set_policy(
                edge, fee_base_msat, fee_proportional_millionths, cltv_expiry_delta,
                htlc_minimum_msat, htlc_maximum_msat, disabled, last_update,
            )  # fmt: skip
        else:
            edge = len(self._source)
            self._source.append(s)
            self._target.append(t)
            self._scid.append(short_channel_id)
            self._capacity_sat.append(capacity_sat)
            self._fee_base_msat.append(fee_base_msat)
            self._fee_proportional_millionths.append(fee_proportional_millionths)
            self._cltv_expiry_delta.append(cltv_expiry_delta)
            self._htlc_minimum_msat.append(htlc_minimum_msat)
            self._htlc_maximum_msat.append(htlc_maximum_msat)
            self._last_update.append(last_update)
            self._disabled.append(1 if disabled else 0)
        self._by_key[key] = edge
        self._scids[short_channel_id] = self._scids.get(short_channel_id, 0) + 1
        self._in[t].append(edge)
        self._out[s].append(edge)
        self._touch(edge)
        return edge

    def update_policy(
        self,
        short_channel_id: int,
        source: bytes,
        *,
        fee_base_msat: int | None = None,
        fee_proportional_millionths: int | None = None,
        cltv_expiry_delta: int | None = None,
        htlc_minimum_msat: int | None = None,
        htlc_maximum_msat: int | None = None,
        disabled: bool | None = None,
        last_update: int | None = None,
    ) -> bool:
        """Apply a `channel_update` from `source`; the fields left None keep their value.

        Returns False (and changes nothing) when the direction is unknown or
        when `last_update` is not newer than the stored one (BOLT 7: a node
        ignores an update whose timestamp is not greater than the last one).
        """
        edge = self._edge_from(short_channel_id, source)
        if edge is None:
            return False
        if last_update is not None and last_update <= self._last_update[edge] and self._last_update[edge] != 0:
            return False
        values = (
            self._fee_base_msat[edge] if fee_base_msat is None else fee_base_msat,
            self._fee_proportional_millionths[edge]
            if fee_proportional_millionths is None
            else fee_proportional_millionths,
            self._cltv_expiry_delta[edge] if cltv_expiry_delta is None else cltv_expiry_delta,
            self._htlc_minimum_msat[edge] if htlc_minimum_msat is None else htlc_minimum_msat,
            self._htlc_maximum_msat[edge] if htlc_maximum_msat is None else htlc_maximum_msat,
            self._last_update[edge] if last_update is None else last_update,
        )
        _validate(*values)
        was_disabled = bool(self._disabled[edge])
        self._set_policy(edge, *values[:5], was_disabled if disabled is None else disabled, values[5])
        self._touch(edge, structural=bool(self._disabled[edge]) != was_disabled)
        return True

    def disable(self, short_channel_id: int, source: bytes | None = None, disabled: bool = True) -> int:
        """Mark one direction (or, with `source` None, both) disabled; returns how many changed."""
        changed = 0
        for edge in self._edges_of(short_channel_id, source):
            if bool(self._disabled[edge]) != disabled:
                self._disabled[edge] = int(disabled)
                self._touch(edge)
                changed += 1
        return changed

    def remove_channel(self, short_channel_id: int, source: bytes | None = None) -> int:
        """Forget one direction (or, with `source` None, both); returns how many were removed."""
        removed = 0
        for edge in self._edges_of(short_channel_id, source):
            s, t = self._source[edge], self._target[edge]
            key = short_channel_id << 1 | channel_direction(self._node_ids[s], self._node_ids[t])
            del self._by_key[key]
            self._in[t].remove(edge)
            self._out[s].remove(edge)
            self._free.append(edge)
            left = self._scids[short_channel_id] - 1
            if left:
                self._scids[short_channel_id] = left
            else:
                del self._scids[short_channel_id]
            self._touch(edge)
            removed += 1
        return removed

    # -- reads -----------------------------------------------------------------

    def policy(self, short_channel_id: int, source: bytes) -> ChannelPolicy | None:
        """The direction of `short_channel_id` that `source` announced, if known."""
        edge = self._edge_from(short_channel_id, source)
        return None if edge is None else self._view_of(edge)

    def policies(self, short_channel_id: int) -> list[ChannelPolicy]:
        """Both known directions of a channel (direction 0 first)."""
        return [self._view_of(e) for e in self._edges_of(short_channel_id, None)]

    def policy_by_key(self, edge_key: int) -> ChannelPolicy | None:
        """The direction named by `short_channel_id << 1 | direction`."""
        edge = self._by_key.get(edge_key)
        return None if edge is None else self._view_of(edge)

    def last_update_of(self, edge_key: int) -> int:
        """The stored last_update of direction `edge_key` (-1 when unknown)."""
        edge = self._by_key.get(edge_key)
        return -1 if edge is None else self._last_update[edge]

    def incoming(self, node_id: bytes) -> list[ChannelPolicy]:
        index = self._node_index.get(node_id)
        return [] if index is None else [self._view_of(e) for e in self._in[index]]

    def outgoing(self, node_id: bytes) -> list[ChannelPolicy]:
        index = self._node_index.get(node_id)
        return [] if index is None else [self._view_of(e) for e in self._out[index]]

    def __iter__(self) -> Iterator[ChannelPolicy]:
        for edge in self._by_key.values():
            yield self._view_of(edge)

    def search_edges(self, target_index: int) -> list[SearchEdge]:
        """The enabled edges into node `target_index` that a route can pass through, as `SearchEdge`s.

        An edge `u -> target` is left out when `u` has no enabled channel in
        from a node other than `target`: such a `u` can only start a route,
        never forward one (`endpoint_edges` gives those edges for a payer).
        Sorted by `max_htlc_msat`, largest first, so a search can stop at the
        first edge too small. Cached until the graph changes around the node.
        """
        view = self._view[target_index]
        if view is None:
            view = []
            for e in self._in[target_index]:
                if not self._disabled[e] and self._forwards(self._source[e], target_index):
                    view.append(self._search_edge(e))
            view.sort(key=_by_max_htlc)
            self._view[target_index] = view
            self._views_built = True
        return view

    def forward_edges(self, source_index: int) -> list[SearchEdge]:
        """Every enabled edge out of `source_index`, as `SearchEdge`s whose first field is the
        *target*; sorted by `max_htlc_msat`, largest first. Cached until changed."""
        view = self._fview[source_index]
        if view is None:
            view = []
            for e in self._out[source_index]:
                if not self._disabled[e]:
                    edge = self._search_edge(e)
                    view.append((self._target[e],) + edge[1:])
            view.sort(key=_by_max_htlc)
            self._fview[source_index] = view
            self._views_built = True
        return view

    def endpoint_edges(self, source_index: int) -> list[tuple[int, SearchEdge]]:
        """`(target, edge)` for the enabled edges out of `source_index` that `search_edges` leaves out."""
        out = []
        for e in self._out[source_index]:
            t = self._target[e]
            if not self._disabled[e] and not self._forwards(source_index, t):
                out.append((t, self._search_edge(e)))
        return out

    # -- internals -------------------------------------------------------------

    def _touch(self, edge: int, structural: bool = True) -> None:
        # An edge changed: the views of its ends and, when it appeared, vanished or was
        # (dis)abled, the views of the nodes its target has channels to (whether the target
        # can forward to them may have changed). Nothing to do before any view exists.
        self.version += 1
        if not self._views_built:
            return
        target = self._target[edge]
        self._view[target] = None
        self._fview[self._source[edge]] = None
        if structural:
            for e in self._out[target]:
                self._view[self._target[e]] = None

    def _forwards(self, node: int, towards: int) -> bool:
        """Whether `node` has an enabled channel in from a node other than `towards`."""
        source, disabled = self._source, self._disabled
        return any(source[e] != towards and not disabled[e] for e in self._in[node])

    def _search_edge(self, e: int) -> SearchEdge:
        s, t = self._source[e], self._target[e]
        cap_msat = self._capacity_sat[e] * 1000
        hmax = self._htlc_maximum_msat[e]
        if cap_msat and hmax > cap_msat:
            hmax = cap_msat
        return (
            s,
            self._scid[e] << 1 | (0 if self._node_ids[s] < self._node_ids[t] else 1),
            self._fee_base_msat[e],
            self._fee_proportional_millionths[e],
            self._cltv_expiry_delta[e],
            self._htlc_minimum_msat[e],
            hmax,
            cap_msat,
        )

    def _set_policy(
        self,
        edge: int,
        fee_base_msat: int,
        fee_proportional_millionths: int,
        cltv_expiry_delta: int,
        htlc_minimum_msat: int,
        htlc_maximum_msat: int,
        disabled: bool,
        last_update: int,
    ) -> None:
        self._fee_base_msat[edge] = fee_base_msat
        self._fee_proportional_millionths[edge] = fee_proportional_millionths
        self._cltv_expiry_delta[edge] = cltv_expiry_delta
        self._htlc_minimum_msat[edge] = htlc_minimum_msat
        self._htlc_maximum_msat[edge] = htlc_maximum_msat
        self._last_update[edge] = last_update
        self._disabled[edge] = int(bool(disabled))

    def _edge_from(self, short_channel_id: int, source: bytes) -> int | None:
        for direction in (0, 1):
            edge = self._by_key.get(short_channel_id << 1 | direction)
            if edge is not None and self._node_ids[self._source[edge]] == source:
                return edge
        return None

    def _edges_of(self, short_channel_id: int, source: bytes | None) -> list[int]:
        if source is not None:
            edge = self._edge_from(short_channel_id, source)
            return [] if edge is None else [edge]
        return [e for d in (0, 1) if (e := self._by_key.get(short_channel_id << 1 | d)) is not None]

    def _view_of(self, edge: int) -> ChannelPolicy:
        return ChannelPolicy(
            source=self._node_ids[self._source[edge]],
            target=self._node_ids[self._target[edge]],
            short_channel_id=self._scid[edge],
            capacity_sat=self._capacity_sat[edge],
            fee_base_msat=self._fee_base_msat[edge],
            fee_proportional_millionths=self._fee_proportional_millionths[edge],
            cltv_expiry_delta=self._cltv_expiry_delta[edge],
            htlc_minimum_msat=self._htlc_minimum_msat[edge],
            htlc_maximum_msat=self._htlc_maximum_msat[edge],
            disabled=bool(self._disabled[edge]),
            last_update=self._last_update[edge],
        )


# --------------------------------------------------------------------------
# loaders
# --------------------------------------------------------------------------


def _read(path: str | Path) -> bytes:
    """The bytes of a file, decompressed when it ends in `.xz` or `.gz`."""
    p = Path(path)
    if p.suffix == ".xz":
        return lzma.decompress(p.read_bytes())
    if p.suffix == ".gz":
        return gzip.decompress(p.read_bytes())
    return p.read_bytes()


def load_listchannels_json(path: str | Path, graph: ChannelGraph | None = None) -> ChannelGraph:
    """Load a Core Lightning `listchannels` JSON (`.xz`, `.gz` or plain) into a graph.

    Reads `source`, `destination`, `short_channel_id`, `satoshis`, `active`,
    `base_fee_millisatoshi`, `fee_per_millionth`, `delay` and, where present,
    `last_update`, `htlc_minimum_msat` and `htlc_maximum_msat` (else 0 and the
    capacity). Inactive entries are kept, marked disabled. When a direction
    appears twice the entry with the later `last_update` wins.
    """
    doc: Any = json.loads(_read(path))
    if not isinstance(doc, dict) or not isinstance(doc.get("channels"), list):
        raise GraphError(f"{path}: not a listchannels document (no 'channels' list)")
    graph = ChannelGraph() if graph is None else graph
    scids: dict[str, int] = {}
    for n, entry in enumerate(doc["channels"]):
        try:
            text = entry["short_channel_id"]
            scid = scids.get(text)
            if scid is None:
                scid = scids[text] = parse_short_channel_id(text)
            source = bytes.fromhex(entry["source"])
            target = bytes.fromhex(entry["destination"])
            capacity_sat = int(entry["satoshis"])
            last_update = int(entry.get("last_update", 0))
            if graph.last_update_of(scid << 1 | channel_direction(source, target)) > last_update:
                continue
            hmax = entry.get("htlc_maximum_msat")
            graph.add_channel(
                source,
                target,
                scid,
                capacity_sat=capacity_sat,
                fee_base_msat=int(entry["base_fee_millisatoshi"]),
                fee_proportional_millionths=int(entry["fee_per_millionth"]),
                cltv_expiry_delta=int(entry["delay"]),
                htlc_minimum_msat=_msat(entry.get("htlc_minimum_msat", 0)),
                htlc_maximum_msat=capacity_sat * 1000 if hmax is None else _msat(hmax),
                disabled=not entry.get("active", True),
                last_update=last_update,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise GraphError(f"{path}: channels[{n}]: {e}") from e
    return graph


def _msat(value: object) -> int:
    """An msat amount as listchannels prints it: an int, or a string like '1000msat'."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value.removesuffix("msat"))
    raise GraphError(f"not an msat amount: {value!r}")


GOSSMAP_COMPRESS_HEADER = b"GOSSMAP_COMPRESSv1\x00"


class _BigSizeReader:
    """Reads BOLT 1 BigSize integers (as Core Lightning writes them) from a byte string."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def read(self) -> int:
        data, pos = self.data, self.pos
        if pos >= len(data):
            raise GraphError(f"gossmap: truncated at byte {pos}")
        first = data[pos]
        if first < 0xFD:
            self.pos = pos + 1
            return first
        width = 2 if first == 0xFD else 4 if first == 0xFE else 8
        end = pos + 1 + width
        if end > len(data):
            raise GraphError(f"gossmap: truncated BigSize at byte {pos}")
        self.pos = end
        return int.from_bytes(data[pos + 1 : end], "big")

    def many(self, count: int) -> list[int]:
        # Nearly every value is one byte: take runs of them with a slice.
        out: list[int] = []
        data = self.data
        while len(out) < count:
            pos = self.pos
            need = count - len(out)
            run = data[pos : pos + need]
            cut = next((i for i, b in enumerate(run) if b >= 0xFD), len(run))
            out.extend(run[:cut])
            self.pos = pos + cut
            if len(out) < count:
                out.append(self.read())
        return out

    def template(self) -> list[int]:
        return self.many(self.read())

    def indexed(self, template: list[int], count: int, what: str) -> list[int]:
        try:
            return [template[i] for i in self.many(count)]
        except IndexError:
            raise GraphError(f"gossmap: {what} index outside its template of {len(template)}") from None


def load_gossmap(
    path: str | Path, node_map_path: str | Path, graph: ChannelGraph | None = None
) -> ChannelGraph:
    """Load a "GOSSMAP_COMPRESSv1" file (gzip) with its `index:node_id_hex:alias` node map.

    The format (devtools/gossmap-compress.c in Core Lightning): the header,
    then BigSize values: the channel count, every channel's first node index,
    every channel's second node index; the disabled directions (`2*channel +
    direction`, ended by `2*channel_count`); capacities in sat (a template of
    distinct values, then one index per channel); then per direction of each
    channel (0 = from node_id_1, the lesser node id, as in BOLT 7)
    htlc_minimum_msat, htlc_maximum_msat (0 meaning the capacity, 1 meaning 99% of
    it), fee_base_msat, fee_proportional_millionths and cltv_expiry_delta, each
    a template then indices. The format keeps no short_channel_ids: channel `i`
    gets the synthetic `ix0x0`, as the decoded JSON of the shared vectors does.
    """
    node_ids: dict[int, bytes] = {}
    for line_no, raw in enumerate(_read(node_map_path).splitlines(), 1):
        if not raw.strip():
            continue
        parts = raw.split(b":", 2)
        try:
            node_ids[int(parts[0])] = bytes.fromhex(parts[1].decode("ascii"))
        except (IndexError, ValueError):
            raise GraphError(f"{node_map_path}:{line_no}: expected index:node_id:alias") from None
    data = gzip.decompress(Path(path).read_bytes())
    if not data.startswith(GOSSMAP_COMPRESS_HEADER):
        raise GraphError(f"{path}: not a GOSSMAP_COMPRESSv1 file")
    r = _BigSizeReader(data, len(GOSSMAP_COMPRESS_HEADER))
    count = r.read()
    node1 = r.many(count)
    node2 = r.many(count)
    disabled = bytearray(2 * count)
    while (index := r.read()) < 2 * count:
        disabled[index] = 1
    capacity = r.indexed(r.template(), count, "capacity")
    htlc_min = r.indexed(r.template(), 2 * count, "htlc_min")
    htlc_max = r.indexed(r.template(), 2 * count, "htlc_max")
    base_fee = r.indexed(r.template(), 2 * count, "basefee")
    prop_fee = r.indexed(r.template(), 2 * count, "propfee")
    delay = r.indexed(r.template(), 2 * count, "delay")
    if r.pos != len(data):
        raise GraphError(f"{path}: {len(data) - r.pos} bytes after the last field")
    graph = ChannelGraph() if graph is None else graph
    for i in range(count):
        try:
            a, b = node_ids[node1[i]], node_ids[node2[i]]
        except KeyError as e:
            raise GraphError(f"{path}: channel {i}: node index {e} missing from the node map") from None
        ends = (a, b) if a < b else (b, a)  # ends[d] announced direction d
        cap_msat = capacity[i] * 1000
        for d in (0, 1):
            j = 2 * i + d
            hmax = htlc_max[j]
            if hmax == 0:
                hmax = cap_msat
            elif hmax == 1:
                hmax = int(cap_msat * 0.99)  # as the compressor's amount_msat_scale computes it
            graph.add_channel(
                ends[d],
                ends[1 - d],
                i << 40,
                capacity_sat=capacity[i],
                fee_base_msat=base_fee[j],
                fee_proportional_millionths=prop_fee[j],
                cltv_expiry_delta=delay[j],
                htlc_minimum_msat=htlc_min[j],
                htlc_maximum_msat=hmax,
                disabled=bool(disabled[j]),
            )
    return graph
