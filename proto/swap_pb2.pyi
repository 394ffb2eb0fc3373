from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ChainInfo(_message.Message):
    __slots__ = ("chain", "height", "min_conf")
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MIN_CONF_FIELD_NUMBER: _ClassVar[int]
    chain: str
    height: int
    min_conf: int
    def __init__(self, chain: _Optional[str] = ..., height: _Optional[int] = ..., min_conf: _Optional[int] = ...) -> None: ...

class GetInfoResponse(_message.Message):
    __slots__ = ("version", "peer_address", "chains", "active_swaps", "total_swaps")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PEER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CHAINS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_SWAPS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SWAPS_FIELD_NUMBER: _ClassVar[int]
    version: str
    peer_address: str
    chains: _containers.RepeatedCompositeFieldContainer[ChainInfo]
    active_swaps: int
    total_swaps: int
    def __init__(self, version: _Optional[str] = ..., peer_address: _Optional[str] = ..., chains: _Optional[_Iterable[_Union[ChainInfo, _Mapping]]] = ..., active_swaps: _Optional[int] = ..., total_swaps: _Optional[int] = ...) -> None: ...

class InitiateSwapRequest(_message.Message):
    __slots__ = ("peer", "send_chain", "send_amount_sat", "receive_chain", "receive_amount_sat", "initiator_lock_s", "participant_lock_s")
    PEER_FIELD_NUMBER: _ClassVar[int]
    SEND_CHAIN_FIELD_NUMBER: _ClassVar[int]
    SEND_AMOUNT_SAT_FIELD_NUMBER: _ClassVar[int]
    RECEIVE_CHAIN_FIELD_NUMBER: _ClassVar[int]
    RECEIVE_AMOUNT_SAT_FIELD_NUMBER: _ClassVar[int]
    INITIATOR_LOCK_S_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_LOCK_S_FIELD_NUMBER: _ClassVar[int]
    peer: str
    send_chain: str
    send_amount_sat: int
    receive_chain: str
    receive_amount_sat: int
    initiator_lock_s: int
    participant_lock_s: int
    def __init__(self, peer: _Optional[str] = ..., send_chain: _Optional[str] = ..., send_amount_sat: _Optional[int] = ..., receive_chain: _Optional[str] = ..., receive_amount_sat: _Optional[int] = ..., initiator_lock_s: _Optional[int] = ..., participant_lock_s: _Optional[int] = ...) -> None: ...

class AcceptSwapRequest(_message.Message):
    __slots__ = ("swap_id",)
    SWAP_ID_FIELD_NUMBER: _ClassVar[int]
    swap_id: str
    def __init__(self, swap_id: _Optional[str] = ...) -> None: ...

class ListSwapsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSwapsResponse(_message.Message):
    __slots__ = ("swaps",)
    SWAPS_FIELD_NUMBER: _ClassVar[int]
    swaps: _containers.RepeatedCompositeFieldContainer[SwapStatus]
    def __init__(self, swaps: _Optional[_Iterable[_Union[SwapStatus, _Mapping]]] = ...) -> None: ...

class SwapInfoRequest(_message.Message):
    __slots__ = ("swap_id",)
    SWAP_ID_FIELD_NUMBER: _ClassVar[int]
    swap_id: str
    def __init__(self, swap_id: _Optional[str] = ...) -> None: ...

class ContractStatus(_message.Message):
    __slots__ = ("chain", "contract", "address", "txid", "vout", "amount_sat", "locktime", "mined_height", "blocks_to_refund", "seconds_to_refund")
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TXID_FIELD_NUMBER: _ClassVar[int]
    VOUT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_SAT_FIELD_NUMBER: _ClassVar[int]
    LOCKTIME_FIELD_NUMBER: _ClassVar[int]
    MINED_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_TO_REFUND_FIELD_NUMBER: _ClassVar[int]
    SECONDS_TO_REFUND_FIELD_NUMBER: _ClassVar[int]
    chain: str
    contract: str
    address: str
    txid: str
    vout: int
    amount_sat: int
    locktime: int
    mined_height: int
    blocks_to_refund: int
    seconds_to_refund: int
    def __init__(self, chain: _Optional[str] = ..., contract: _Optional[str] = ..., address: _Optional[str] = ..., txid: _Optional[str] = ..., vout: _Optional[int] = ..., amount_sat: _Optional[int] = ..., locktime: _Optional[int] = ..., mined_height: _Optional[int] = ..., blocks_to_refund: _Optional[int] = ..., seconds_to_refund: _Optional[int] = ...) -> None: ...

class SwapStatus(_message.Message):
    __slots__ = ("swap_id", "role", "state", "peer", "send_chain", "send_amount_sat", "receive_chain", "receive_amount_sat", "secret_hash", "our_contract", "their_contract", "heights", "reason", "redeem_txid", "refund_txid", "created", "updated", "finished")
    class HeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SWAP_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    SEND_CHAIN_FIELD_NUMBER: _ClassVar[int]
    SEND_AMOUNT_SAT_FIELD_NUMBER: _ClassVar[int]
    RECEIVE_CHAIN_FIELD_NUMBER: _ClassVar[int]
    RECEIVE_AMOUNT_SAT_FIELD_NUMBER: _ClassVar[int]
    SECRET_HASH_FIELD_NUMBER: _ClassVar[int]
    OUR_CONTRACT_FIELD_NUMBER: _ClassVar[int]
    THEIR_CONTRACT_FIELD_NUMBER: _ClassVar[int]
    HEIGHTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REDEEM_TXID_FIELD_NUMBER: _ClassVar[int]
    REFUND_TXID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    swap_id: str
    role: str
    state: str
    peer: str
    send_chain: str
    send_amount_sat: int
    receive_chain: str
    receive_amount_sat: int
    secret_hash: str
    our_contract: ContractStatus
    their_contract: ContractStatus
    heights: _containers.ScalarMap[str, int]
    reason: str
    redeem_txid: str
    refund_txid: str
    created: int
    updated: int
    finished: bool
    def __init__(self, swap_id: _Optional[str] = ..., role: _Optional[str] = ..., state: _Optional[str] = ..., peer: _Optional[str] = ..., send_chain: _Optional[str] = ..., send_amount_sat: _Optional[int] = ..., receive_chain: _Optional[str] = ..., receive_amount_sat: _Optional[int] = ..., secret_hash: _Optional[str] = ..., our_contract: _Optional[_Union[ContractStatus, _Mapping]] = ..., their_contract: _Optional[_Union[ContractStatus, _Mapping]] = ..., heights: _Optional[_Mapping[str, int]] = ..., reason: _Optional[str] = ..., redeem_txid: _Optional[str] = ..., refund_txid: _Optional[str] = ..., created: _Optional[int] = ..., updated: _Optional[int] = ..., finished: _Optional[bool] = ...) -> None: ...

class SwapOffer(_message.Message):
    __slots__ = ("swap_id", "initiator_chain", "initiator_amount_sat", "participant_chain", "participant_amount_sat", "secret_hash", "initiator_pkh", "initiator_lock_s", "participant_lock_s", "safety_margin_s", "reply_to")
    SWAP_ID_FIELD_NUMBER: _ClassVar[int]
    INITIATOR_CHAIN_FIELD_NUMBER: _ClassVar[int]
    INITIATOR_AMOUNT_SAT_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_CHAIN_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_AMOUNT_SAT_FIELD_NUMBER: _ClassVar[int]
    SECRET_HASH_FIELD_NUMBER: _ClassVar[int]
    INITIATOR_PKH_FIELD_NUMBER: _ClassVar[int]
    INITIATOR_LOCK_S_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_LOCK_S_FIELD_NUMBER: _ClassVar[int]
    SAFETY_MARGIN_S_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    swap_id: str
    initiator_chain: str
    initiator_amount_sat: int
    participant_chain: str
    participant_amount_sat: int
    secret_hash: str
    initiator_pkh: str
    initiator_lock_s: int
    participant_lock_s: int
    safety_margin_s: int
    reply_to: str
    def __init__(self, swap_id: _Optional[str] = ..., initiator_chain: _Optional[str] = ..., initiator_amount_sat: _Optional[int] = ..., participant_chain: _Optional[str] = ..., participant_amount_sat: _Optional[int] = ..., secret_hash: _Optional[str] = ..., initiator_pkh: _Optional[str] = ..., initiator_lock_s: _Optional[int] = ..., participant_lock_s: _Optional[int] = ..., safety_margin_s: _Optional[int] = ..., reply_to: _Optional[str] = ...) -> None: ...

class OfferReply(_message.Message):
    __slots__ = ("decision", "participant_pkh", "reason")
    class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        PENDING: _ClassVar[OfferReply.Decision]
        ACCEPTED: _ClassVar[OfferReply.Decision]
        REJECTED: _ClassVar[OfferReply.Decision]
    PENDING: OfferReply.Decision
    ACCEPTED: OfferReply.Decision
    REJECTED: OfferReply.Decision
    DECISION_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_PKH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    decision: OfferReply.Decision
    participant_pkh: str
    reason: str
    def __init__(self, decision: _Optional[_Union[OfferReply.Decision, str]] = ..., participant_pkh: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ContractMessage(_message.Message):
    __slots__ = ("swap_id", "contract", "contract_tx")
    SWAP_ID_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_TX_FIELD_NUMBER: _ClassVar[int]
    swap_id: str
    contract: str
    contract_tx: str
    def __init__(self, swap_id: _Optional[str] = ..., contract: _Optional[str] = ..., contract_tx: _Optional[str] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
