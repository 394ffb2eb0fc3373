from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TxProof(_message.Message):
    __slots__ = ("raw_tx", "proof")
    RAW_TX_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    raw_tx: str
    proof: str
    def __init__(self, raw_tx: _Optional[str] = ..., proof: _Optional[str] = ...) -> None: ...

class SignReleaseRequest(_message.Message):
    __slots__ = ("source_chain", "deposit_txid", "deposit_vout", "amount_sat", "destination_chain", "destination_address", "fee_sat", "epoch", "release_tx", "proofs")
    SOURCE_CHAIN_FIELD_NUMBER: _ClassVar[int]
    DEPOSIT_TXID_FIELD_NUMBER: _ClassVar[int]
    DEPOSIT_VOUT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_SAT_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_CHAIN_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FEE_SAT_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    RELEASE_TX_FIELD_NUMBER: _ClassVar[int]
    PROOFS_FIELD_NUMBER: _ClassVar[int]
    source_chain: str
    deposit_txid: str
    deposit_vout: int
    amount_sat: int
    destination_chain: str
    destination_address: str
    fee_sat: int
    epoch: int
    release_tx: str
    proofs: _containers.RepeatedCompositeFieldContainer[TxProof]
    def __init__(self, source_chain: _Optional[str] = ..., deposit_txid: _Optional[str] = ..., deposit_vout: _Optional[int] = ..., amount_sat: _Optional[int] = ..., destination_chain: _Optional[str] = ..., destination_address: _Optional[str] = ..., fee_sat: _Optional[int] = ..., epoch: _Optional[int] = ..., release_tx: _Optional[str] = ..., proofs: _Optional[_Iterable[_Union[TxProof, _Mapping]]] = ...) -> None: ...

class PegClaim(_message.Message):
    __slots__ = ("source_chain", "deposit_txid", "deposit_vout", "amount_sat", "destination_chain", "destination_script", "fee_sat", "epoch")
    SOURCE_CHAIN_FIELD_NUMBER: _ClassVar[int]
    DEPOSIT_TXID_FIELD_NUMBER: _ClassVar[int]
    DEPOSIT_VOUT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_SAT_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_CHAIN_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_SCRIPT_FIELD_NUMBER: _ClassVar[int]
    FEE_SAT_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    source_chain: str
    deposit_txid: str
    deposit_vout: int
    amount_sat: int
    destination_chain: str
    destination_script: bytes
    fee_sat: int
    epoch: int
    def __init__(self, source_chain: _Optional[str] = ..., deposit_txid: _Optional[str] = ..., deposit_vout: _Optional[int] = ..., amount_sat: _Optional[int] = ..., destination_chain: _Optional[str] = ..., destination_script: _Optional[bytes] = ..., fee_sat: _Optional[int] = ..., epoch: _Optional[int] = ...) -> None: ...

class Attestation(_message.Message):
    __slots__ = ("claim", "committee_id", "release_txid", "release_sighashes")
    CLAIM_FIELD_NUMBER: _ClassVar[int]
    COMMITTEE_ID_FIELD_NUMBER: _ClassVar[int]
    RELEASE_TXID_FIELD_NUMBER: _ClassVar[int]
    RELEASE_SIGHASHES_FIELD_NUMBER: _ClassVar[int]
    claim: PegClaim
    committee_id: bytes
    release_txid: str
    release_sighashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, claim: _Optional[_Union[PegClaim, _Mapping]] = ..., committee_id: _Optional[bytes] = ..., release_txid: _Optional[str] = ..., release_sighashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class NotarySignature(_message.Message):
    __slots__ = ("notary_pubkey", "attestation", "input_signatures", "attestation_signature")
    NOTARY_PUBKEY_FIELD_NUMBER: _ClassVar[int]
    ATTESTATION_FIELD_NUMBER: _ClassVar[int]
    INPUT_SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    ATTESTATION_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    notary_pubkey: bytes
    attestation: Attestation
    input_signatures: _containers.RepeatedScalarFieldContainer[bytes]
    attestation_signature: bytes
    def __init__(self, notary_pubkey: _Optional[bytes] = ..., attestation: _Optional[_Union[Attestation, _Mapping]] = ..., input_signatures: _Optional[_Iterable[bytes]] = ..., attestation_signature: _Optional[bytes] = ...) -> None: ...

class Refusal(_message.Message):
    __slots__ = ("reason", "detail")
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    reason: str
    detail: str
    def __init__(self, reason: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class SignReleaseResponse(_message.Message):
    __slots__ = ("signature", "refusal")
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_FIELD_NUMBER: _ClassVar[int]
    signature: NotarySignature
    refusal: Refusal
    def __init__(self, signature: _Optional[_Union[NotarySignature, _Mapping]] = ..., refusal: _Optional[_Union[Refusal, _Mapping]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ChainStatus(_message.Message):
    __slots__ = ("chain", "mode", "height", "best_block_hash", "synced", "last_error")
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    BEST_BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    SYNCED_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    chain: str
    mode: str
    height: int
    best_block_hash: str
    synced: bool
    last_error: str
    def __init__(self, chain: _Optional[str] = ..., mode: _Optional[str] = ..., height: _Optional[int] = ..., best_block_hash: _Optional[str] = ..., synced: _Optional[bool] = ..., last_error: _Optional[str] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("pubkey", "key_index", "epochs", "chains", "redeemed", "version")
    PUBKEY_FIELD_NUMBER: _ClassVar[int]
    KEY_INDEX_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    CHAINS_FIELD_NUMBER: _ClassVar[int]
    REDEEMED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    pubkey: bytes
    key_index: int
    epochs: _containers.RepeatedScalarFieldContainer[int]
    chains: _containers.RepeatedCompositeFieldContainer[ChainStatus]
    redeemed: int
    version: str
    def __init__(self, pubkey: _Optional[bytes] = ..., key_index: _Optional[int] = ..., epochs: _Optional[_Iterable[int]] = ..., chains: _Optional[_Iterable[_Union[ChainStatus, _Mapping]]] = ..., redeemed: _Optional[int] = ..., version: _Optional[str] = ...) -> None: ...

class SignSweepRequest(_message.Message):
    __slots__ = ("chain", "from_epoch", "to_epoch", "sweep_tx", "witness_scripts", "proofs")
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    FROM_EPOCH_FIELD_NUMBER: _ClassVar[int]
    TO_EPOCH_FIELD_NUMBER: _ClassVar[int]
    SWEEP_TX_FIELD_NUMBER: _ClassVar[int]
    WITNESS_SCRIPTS_FIELD_NUMBER: _ClassVar[int]
    PROOFS_FIELD_NUMBER: _ClassVar[int]
    chain: str
    from_epoch: int
    to_epoch: int
    sweep_tx: str
    witness_scripts: _containers.RepeatedScalarFieldContainer[bytes]
    proofs: _containers.RepeatedCompositeFieldContainer[TxProof]
    def __init__(self, chain: _Optional[str] = ..., from_epoch: _Optional[int] = ..., to_epoch: _Optional[int] = ..., sweep_tx: _Optional[str] = ..., witness_scripts: _Optional[_Iterable[bytes]] = ..., proofs: _Optional[_Iterable[_Union[TxProof, _Mapping]]] = ...) -> None: ...

class SweepSignature(_message.Message):
    __slots__ = ("notary_pubkey", "chain", "from_epoch", "to_epoch", "sweep_txid", "input_signatures")
    NOTARY_PUBKEY_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    FROM_EPOCH_FIELD_NUMBER: _ClassVar[int]
    TO_EPOCH_FIELD_NUMBER: _ClassVar[int]
    SWEEP_TXID_FIELD_NUMBER: _ClassVar[int]
    INPUT_SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    notary_pubkey: bytes
    chain: str
    from_epoch: int
    to_epoch: int
    sweep_txid: str
    input_signatures: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, notary_pubkey: _Optional[bytes] = ..., chain: _Optional[str] = ..., from_epoch: _Optional[int] = ..., to_epoch: _Optional[int] = ..., sweep_txid: _Optional[str] = ..., input_signatures: _Optional[_Iterable[bytes]] = ...) -> None: ...

class SignSweepResponse(_message.Message):
    __slots__ = ("signature", "refusal")
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_FIELD_NUMBER: _ClassVar[int]
    signature: SweepSignature
    refusal: Refusal
    def __init__(self, signature: _Optional[_Union[SweepSignature, _Mapping]] = ..., refusal: _Optional[_Union[Refusal, _Mapping]] = ...) -> None: ...
