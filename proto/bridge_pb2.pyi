from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QuoteRequest(_message.Message):
    __slots__ = ("payment_request",)
    PAYMENT_REQUEST_FIELD_NUMBER: _ClassVar[int]
    payment_request: str
    def __init__(self, payment_request: _Optional[str] = ...) -> None: ...

class Swap(_message.Message):
    __slots__ = ("payment_hash", "state", "alpha_payment_request", "beta_payment_request", "beta_amt_msat", "alpha_amt_msat", "fee_msat", "alpha_cltv_expiry", "beta_cltv", "beta_fee_limit_msat", "creation_date", "update_date", "preimage", "reason", "beta_fee_msat", "alpha_expiry")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        QUOTING: _ClassVar[Swap.State]
        QUOTED: _ClassVar[Swap.State]
        PAYING: _ClassVar[Swap.State]
        SETTLING: _ClassVar[Swap.State]
        CANCELING: _ClassVar[Swap.State]
        SETTLED: _ClassVar[Swap.State]
        CANCELED: _ClassVar[Swap.State]
        EXPIRED: _ClassVar[Swap.State]
    QUOTING: Swap.State
    QUOTED: Swap.State
    PAYING: Swap.State
    SETTLING: Swap.State
    CANCELING: Swap.State
    SETTLED: Swap.State
    CANCELED: Swap.State
    EXPIRED: Swap.State
    PAYMENT_HASH_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ALPHA_PAYMENT_REQUEST_FIELD_NUMBER: _ClassVar[int]
    BETA_PAYMENT_REQUEST_FIELD_NUMBER: _ClassVar[int]
    BETA_AMT_MSAT_FIELD_NUMBER: _ClassVar[int]
    ALPHA_AMT_MSAT_FIELD_NUMBER: _ClassVar[int]
    FEE_MSAT_FIELD_NUMBER: _ClassVar[int]
    ALPHA_CLTV_EXPIRY_FIELD_NUMBER: _ClassVar[int]
    BETA_CLTV_FIELD_NUMBER: _ClassVar[int]
    BETA_FEE_LIMIT_MSAT_FIELD_NUMBER: _ClassVar[int]
    CREATION_DATE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_DATE_FIELD_NUMBER: _ClassVar[int]
    PREIMAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    BETA_FEE_MSAT_FIELD_NUMBER: _ClassVar[int]
    ALPHA_EXPIRY_FIELD_NUMBER: _ClassVar[int]
    payment_hash: str
    state: Swap.State
    alpha_payment_request: str
    beta_payment_request: str
    beta_amt_msat: int
    alpha_amt_msat: int
    fee_msat: int
    alpha_cltv_expiry: int
    beta_cltv: int
    beta_fee_limit_msat: int
    creation_date: int
    update_date: int
    preimage: str
    reason: str
    beta_fee_msat: int
    alpha_expiry: int
    def __init__(self, payment_hash: _Optional[str] = ..., state: _Optional[_Union[Swap.State, str]] = ..., alpha_payment_request: _Optional[str] = ..., beta_payment_request: _Optional[str] = ..., beta_amt_msat: _Optional[int] = ..., alpha_amt_msat: _Optional[int] = ..., fee_msat: _Optional[int] = ..., alpha_cltv_expiry: _Optional[int] = ..., beta_cltv: _Optional[int] = ..., beta_fee_limit_msat: _Optional[int] = ..., creation_date: _Optional[int] = ..., update_date: _Optional[int] = ..., preimage: _Optional[str] = ..., reason: _Optional[str] = ..., beta_fee_msat: _Optional[int] = ..., alpha_expiry: _Optional[int] = ...) -> None: ...

class ListSwapsRequest(_message.Message):
    __slots__ = ("pending_only",)
    PENDING_ONLY_FIELD_NUMBER: _ClassVar[int]
    pending_only: bool
    def __init__(self, pending_only: _Optional[bool] = ...) -> None: ...

class ListSwapsResponse(_message.Message):
    __slots__ = ("swaps",)
    SWAPS_FIELD_NUMBER: _ClassVar[int]
    swaps: _containers.RepeatedCompositeFieldContainer[Swap]
    def __init__(self, swaps: _Optional[_Iterable[_Union[Swap, _Mapping]]] = ...) -> None: ...

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetInfoResponse(_message.Message):
    __slots__ = ("alpha_chain", "beta_chain", "rate", "fee_base_msat", "fee_ppm", "beta_liquidity_msat", "beta_reserved_msat", "safety_margin_blocks", "alpha_pubkey", "beta_pubkey")
    ALPHA_CHAIN_FIELD_NUMBER: _ClassVar[int]
    BETA_CHAIN_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    FEE_BASE_MSAT_FIELD_NUMBER: _ClassVar[int]
    FEE_PPM_FIELD_NUMBER: _ClassVar[int]
    BETA_LIQUIDITY_MSAT_FIELD_NUMBER: _ClassVar[int]
    BETA_RESERVED_MSAT_FIELD_NUMBER: _ClassVar[int]
    SAFETY_MARGIN_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    ALPHA_PUBKEY_FIELD_NUMBER: _ClassVar[int]
    BETA_PUBKEY_FIELD_NUMBER: _ClassVar[int]
    alpha_chain: str
    beta_chain: str
    rate: str
    fee_base_msat: int
    fee_ppm: int
    beta_liquidity_msat: int
    beta_reserved_msat: int
    safety_margin_blocks: int
    alpha_pubkey: str
    beta_pubkey: str
    def __init__(self, alpha_chain: _Optional[str] = ..., beta_chain: _Optional[str] = ..., rate: _Optional[str] = ..., fee_base_msat: _Optional[int] = ..., fee_ppm: _Optional[int] = ..., beta_liquidity_msat: _Optional[int] = ..., beta_reserved_msat: _Optional[int] = ..., safety_margin_blocks: _Optional[int] = ..., alpha_pubkey: _Optional[str] = ..., beta_pubkey: _Optional[str] = ...) -> None: ...
