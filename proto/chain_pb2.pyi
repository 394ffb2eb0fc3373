from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetBlockchainInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BlockchainInfo(_message.Message):
    __slots__ = ("chain", "blocks", "headers", "bestblockhash", "difficulty", "time", "mediantime", "verificationprogress", "initialblockdownload", "chainwork", "size_on_disk", "pruned", "warnings")
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BESTBLOCKHASH_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    MEDIANTIME_FIELD_NUMBER: _ClassVar[int]
    VERIFICATIONPROGRESS_FIELD_NUMBER: _ClassVar[int]
    INITIALBLOCKDOWNLOAD_FIELD_NUMBER: _ClassVar[int]
    CHAINWORK_FIELD_NUMBER: _ClassVar[int]
    SIZE_ON_DISK_FIELD_NUMBER: _ClassVar[int]
    PRUNED_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    chain: str
    blocks: int
    headers: int
    bestblockhash: str
    difficulty: float
    time: int
    mediantime: int
    verificationprogress: float
    initialblockdownload: bool
    chainwork: str
    size_on_disk: int
    pruned: bool
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, chain: _Optional[str] = ..., blocks: _Optional[int] = ..., headers: _Optional[int] = ..., bestblockhash: _Optional[str] = ..., difficulty: _Optional[float] = ..., time: _Optional[int] = ..., mediantime: _Optional[int] = ..., verificationprogress: _Optional[float] = ..., initialblockdownload: _Optional[bool] = ..., chainwork: _Optional[str] = ..., size_on_disk: _Optional[int] = ..., pruned: _Optional[bool] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class GetBlockCountRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BlockCount(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class GetBestBlockHashRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetBlockHashRequest(_message.Message):
    __slots__ = ("height",)
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    height: int
    def __init__(self, height: _Optional[int] = ...) -> None: ...

class BlockHash(_message.Message):
    __slots__ = ("hash",)
    HASH_FIELD_NUMBER: _ClassVar[int]
    hash: str
    def __init__(self, hash: _Optional[str] = ...) -> None: ...

class GetBlockRequest(_message.Message):
    __slots__ = ("blockhash", "verbosity")
    BLOCKHASH_FIELD_NUMBER: _ClassVar[int]
    VERBOSITY_FIELD_NUMBER: _ClassVar[int]
    blockhash: str
    verbosity: int
    def __init__(self, blockhash: _Optional[str] = ..., verbosity: _Optional[int] = ...) -> None: ...

class BlockHeaderInfo(_message.Message):
    __slots__ = ("hash", "confirmations", "height", "version", "merkleroot", "time", "mediantime", "nonce", "bits", "difficulty", "chainwork", "n_tx", "previousblockhash", "nextblockhash", "hex")
    HASH_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATIONS_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MERKLEROOT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    MEDIANTIME_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    BITS_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    CHAINWORK_FIELD_NUMBER: _ClassVar[int]
    N_TX_FIELD_NUMBER: _ClassVar[int]
    PREVIOUSBLOCKHASH_FIELD_NUMBER: _ClassVar[int]
    NEXTBLOCKHASH_FIELD_NUMBER: _ClassVar[int]
    HEX_FIELD_NUMBER: _ClassVar[int]
    hash: str
    confirmations: int
    height: int
    version: int
    merkleroot: str
    time: int
    mediantime: int
    nonce: int
    bits: str
    difficulty: float
    chainwork: str
    n_tx: int
    previousblockhash: str
    nextblockhash: str
    hex: str
    def __init__(self, hash: _Optional[str] = ..., confirmations: _Optional[int] = ..., height: _Optional[int] = ..., version: _Optional[int] = ..., merkleroot: _Optional[str] = ..., time: _Optional[int] = ..., mediantime: _Optional[int] = ..., nonce: _Optional[int] = ..., bits: _Optional[str] = ..., difficulty: _Optional[float] = ..., chainwork: _Optional[str] = ..., n_tx: _Optional[int] = ..., previousblockhash: _Optional[str] = ..., nextblockhash: _Optional[str] = ..., hex: _Optional[str] = ...) -> None: ...

class BlockInfo(_message.Message):
    __slots__ = ("header", "size", "strippedsize", "weight", "tx", "transactions", "hex")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    STRIPPEDSIZE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    TX_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    HEX_FIELD_NUMBER: _ClassVar[int]
    header: BlockHeaderInfo
    size: int
    strippedsize: int
    weight: int
    tx: _containers.RepeatedScalarFieldContainer[str]
    transactions: _containers.RepeatedCompositeFieldContainer[DecodedTransaction]
    hex: str
    def __init__(self, header: _Optional[_Union[BlockHeaderInfo, _Mapping]] = ..., size: _Optional[int] = ..., strippedsize: _Optional[int] = ..., weight: _Optional[int] = ..., tx: _Optional[_Iterable[str]] = ..., transactions: _Optional[_Iterable[_Union[DecodedTransaction, _Mapping]]] = ..., hex: _Optional[str] = ...) -> None: ...

class GetBlockHeaderRequest(_message.Message):
    __slots__ = ("blockhash", "verbose")
    BLOCKHASH_FIELD_NUMBER: _ClassVar[int]
    VERBOSE_FIELD_NUMBER: _ClassVar[int]
    blockhash: str
    verbose: bool
    def __init__(self, blockhash: _Optional[str] = ..., verbose: _Optional[bool] = ...) -> None: ...

class GetRawTransactionRequest(_message.Message):
    __slots__ = ("txid", "verbose", "blockhash")
    TXID_FIELD_NUMBER: _ClassVar[int]
    VERBOSE_FIELD_NUMBER: _ClassVar[int]
    BLOCKHASH_FIELD_NUMBER: _ClassVar[int]
    txid: str
    verbose: bool
    blockhash: str
    def __init__(self, txid: _Optional[str] = ..., verbose: _Optional[bool] = ..., blockhash: _Optional[str] = ...) -> None: ...

class RawTransaction(_message.Message):
    __slots__ = ("hex", "decoded", "blockhash", "confirmations", "blocktime", "in_mempool")
    HEX_FIELD_NUMBER: _ClassVar[int]
    DECODED_FIELD_NUMBER: _ClassVar[int]
    BLOCKHASH_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATIONS_FIELD_NUMBER: _ClassVar[int]
    BLOCKTIME_FIELD_NUMBER: _ClassVar[int]
    IN_MEMPOOL_FIELD_NUMBER: _ClassVar[int]
    hex: str
    decoded: DecodedTransaction
    blockhash: str
    confirmations: int
    blocktime: int
    in_mempool: bool
    def __init__(self, hex: _Optional[str] = ..., decoded: _Optional[_Union[DecodedTransaction, _Mapping]] = ..., blockhash: _Optional[str] = ..., confirmations: _Optional[int] = ..., blocktime: _Optional[int] = ..., in_mempool: _Optional[bool] = ...) -> None: ...

class DecodeRawTransactionRequest(_message.Message):
    __slots__ = ("hexstring",)
    HEXSTRING_FIELD_NUMBER: _ClassVar[int]
    hexstring: str
    def __init__(self, hexstring: _Optional[str] = ...) -> None: ...

class ScriptSig(_message.Message):
    __slots__ = ("asm", "hex")
    ASM_FIELD_NUMBER: _ClassVar[int]
    HEX_FIELD_NUMBER: _ClassVar[int]
    asm: str
    hex: str
    def __init__(self, asm: _Optional[str] = ..., hex: _Optional[str] = ...) -> None: ...

class ScriptPubKey(_message.Message):
    __slots__ = ("asm", "hex", "address", "type")
    ASM_FIELD_NUMBER: _ClassVar[int]
    HEX_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    asm: str
    hex: str
    address: str
    type: str
    def __init__(self, asm: _Optional[str] = ..., hex: _Optional[str] = ..., address: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class TxInput(_message.Message):
    __slots__ = ("txid", "vout", "script_sig", "txinwitness", "sequence", "coinbase")
    TXID_FIELD_NUMBER: _ClassVar[int]
    VOUT_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_SIG_FIELD_NUMBER: _ClassVar[int]
    TXINWITNESS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    COINBASE_FIELD_NUMBER: _ClassVar[int]
    txid: str
    vout: int
    script_sig: ScriptSig
    txinwitness: _containers.RepeatedScalarFieldContainer[str]
    sequence: int
    coinbase: str
    def __init__(self, txid: _Optional[str] = ..., vout: _Optional[int] = ..., script_sig: _Optional[_Union[ScriptSig, _Mapping]] = ..., txinwitness: _Optional[_Iterable[str]] = ..., sequence: _Optional[int] = ..., coinbase: _Optional[str] = ...) -> None: ...

class TxOutput(_message.Message):
    __slots__ = ("value_sat", "n", "script_pub_key")
    VALUE_SAT_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_PUB_KEY_FIELD_NUMBER: _ClassVar[int]
    value_sat: int
    n: int
    script_pub_key: ScriptPubKey
    def __init__(self, value_sat: _Optional[int] = ..., n: _Optional[int] = ..., script_pub_key: _Optional[_Union[ScriptPubKey, _Mapping]] = ...) -> None: ...

class DecodedTransaction(_message.Message):
    __slots__ = ("txid", "hash", "version", "size", "vsize", "weight", "locktime", "vin", "vout")
    TXID_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    VSIZE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    LOCKTIME_FIELD_NUMBER: _ClassVar[int]
    VIN_FIELD_NUMBER: _ClassVar[int]
    VOUT_FIELD_NUMBER: _ClassVar[int]
    txid: str
    hash: str
    version: int
    size: int
    vsize: int
    weight: int
    locktime: int
    vin: _containers.RepeatedCompositeFieldContainer[TxInput]
    vout: _containers.RepeatedCompositeFieldContainer[TxOutput]
    def __init__(self, txid: _Optional[str] = ..., hash: _Optional[str] = ..., version: _Optional[int] = ..., size: _Optional[int] = ..., vsize: _Optional[int] = ..., weight: _Optional[int] = ..., locktime: _Optional[int] = ..., vin: _Optional[_Iterable[_Union[TxInput, _Mapping]]] = ..., vout: _Optional[_Iterable[_Union[TxOutput, _Mapping]]] = ...) -> None: ...

class SendRawTransactionRequest(_message.Message):
    __slots__ = ("hexstring", "maxfeerate")
    HEXSTRING_FIELD_NUMBER: _ClassVar[int]
    MAXFEERATE_FIELD_NUMBER: _ClassVar[int]
    hexstring: str
    maxfeerate: float
    def __init__(self, hexstring: _Optional[str] = ..., maxfeerate: _Optional[float] = ...) -> None: ...

class SendRawTransactionResponse(_message.Message):
    __slots__ = ("txid",)
    TXID_FIELD_NUMBER: _ClassVar[int]
    txid: str
    def __init__(self, txid: _Optional[str] = ...) -> None: ...

class TestMempoolAcceptRequest(_message.Message):
    __slots__ = ("rawtxs",)
    RAWTXS_FIELD_NUMBER: _ClassVar[int]
    rawtxs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, rawtxs: _Optional[_Iterable[str]] = ...) -> None: ...

class MempoolAcceptResult(_message.Message):
    __slots__ = ("txid", "wtxid", "allowed", "vsize", "fee_sat", "reject_reason")
    TXID_FIELD_NUMBER: _ClassVar[int]
    WTXID_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    VSIZE_FIELD_NUMBER: _ClassVar[int]
    FEE_SAT_FIELD_NUMBER: _ClassVar[int]
    REJECT_REASON_FIELD_NUMBER: _ClassVar[int]
    txid: str
    wtxid: str
    allowed: bool
    vsize: int
    fee_sat: int
    reject_reason: str
    def __init__(self, txid: _Optional[str] = ..., wtxid: _Optional[str] = ..., allowed: _Optional[bool] = ..., vsize: _Optional[int] = ..., fee_sat: _Optional[int] = ..., reject_reason: _Optional[str] = ...) -> None: ...

class TestMempoolAcceptResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[MempoolAcceptResult]
    def __init__(self, results: _Optional[_Iterable[_Union[MempoolAcceptResult, _Mapping]]] = ...) -> None: ...

class GetMempoolInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MempoolInfo(_message.Message):
    __slots__ = ("loaded", "size", "bytes", "usage", "total_fee_sat", "maxmempool", "mempoolminfee_sat_kvb", "minrelaytxfee_sat_kvb")
    LOADED_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FEE_SAT_FIELD_NUMBER: _ClassVar[int]
    MAXMEMPOOL_FIELD_NUMBER: _ClassVar[int]
    MEMPOOLMINFEE_SAT_KVB_FIELD_NUMBER: _ClassVar[int]
    MINRELAYTXFEE_SAT_KVB_FIELD_NUMBER: _ClassVar[int]
    loaded: bool
    size: int
    bytes: int
    usage: int
    total_fee_sat: int
    maxmempool: int
    mempoolminfee_sat_kvb: int
    minrelaytxfee_sat_kvb: int
    def __init__(self, loaded: _Optional[bool] = ..., size: _Optional[int] = ..., bytes: _Optional[int] = ..., usage: _Optional[int] = ..., total_fee_sat: _Optional[int] = ..., maxmempool: _Optional[int] = ..., mempoolminfee_sat_kvb: _Optional[int] = ..., minrelaytxfee_sat_kvb: _Optional[int] = ...) -> None: ...

class GetRawMempoolRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RawMempool(_message.Message):
    __slots__ = ("txids",)
    TXIDS_FIELD_NUMBER: _ClassVar[int]
    txids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, txids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetNewAddressRequest(_message.Message):
    __slots__ = ("label",)
    LABEL_FIELD_NUMBER: _ClassVar[int]
    label: str
    def __init__(self, label: _Optional[str] = ...) -> None: ...

class NewAddress(_message.Message):
    __slots__ = ("address",)
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    address: str
    def __init__(self, address: _Optional[str] = ...) -> None: ...

class GetBalanceRequest(_message.Message):
    __slots__ = ("minconf",)
    MINCONF_FIELD_NUMBER: _ClassVar[int]
    minconf: int
    def __init__(self, minconf: _Optional[int] = ...) -> None: ...

class Balance(_message.Message):
    __slots__ = ("confirmed_sat", "unconfirmed_sat", "immature_sat", "watch_only_sat")
    CONFIRMED_SAT_FIELD_NUMBER: _ClassVar[int]
    UNCONFIRMED_SAT_FIELD_NUMBER: _ClassVar[int]
    IMMATURE_SAT_FIELD_NUMBER: _ClassVar[int]
    WATCH_ONLY_SAT_FIELD_NUMBER: _ClassVar[int]
    confirmed_sat: int
    unconfirmed_sat: int
    immature_sat: int
    watch_only_sat: int
    def __init__(self, confirmed_sat: _Optional[int] = ..., unconfirmed_sat: _Optional[int] = ..., immature_sat: _Optional[int] = ..., watch_only_sat: _Optional[int] = ...) -> None: ...

class ListUnspentRequest(_message.Message):
    __slots__ = ("minconf", "maxconf", "addresses")
    MINCONF_FIELD_NUMBER: _ClassVar[int]
    MAXCONF_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    minconf: int
    maxconf: int
    addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, minconf: _Optional[int] = ..., maxconf: _Optional[int] = ..., addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class Unspent(_message.Message):
    __slots__ = ("txid", "vout", "address", "script_pub_key", "amount_sat", "confirmations", "spendable", "solvable", "safe")
    TXID_FIELD_NUMBER: _ClassVar[int]
    VOUT_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_PUB_KEY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_SAT_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATIONS_FIELD_NUMBER: _ClassVar[int]
    SPENDABLE_FIELD_NUMBER: _ClassVar[int]
    SOLVABLE_FIELD_NUMBER: _ClassVar[int]
    SAFE_FIELD_NUMBER: _ClassVar[int]
    txid: str
    vout: int
    address: str
    script_pub_key: str
    amount_sat: int
    confirmations: int
    spendable: bool
    solvable: bool
    safe: bool
    def __init__(self, txid: _Optional[str] = ..., vout: _Optional[int] = ..., address: _Optional[str] = ..., script_pub_key: _Optional[str] = ..., amount_sat: _Optional[int] = ..., confirmations: _Optional[int] = ..., spendable: _Optional[bool] = ..., solvable: _Optional[bool] = ..., safe: _Optional[bool] = ...) -> None: ...

class ListUnspentResponse(_message.Message):
    __slots__ = ("unspent",)
    UNSPENT_FIELD_NUMBER: _ClassVar[int]
    unspent: _containers.RepeatedCompositeFieldContainer[Unspent]
    def __init__(self, unspent: _Optional[_Iterable[_Union[Unspent, _Mapping]]] = ...) -> None: ...

class SendToAddressRequest(_message.Message):
    __slots__ = ("address", "amount_sat", "subtractfeefromamount", "fee_rate_sat_vb", "replaceable")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_SAT_FIELD_NUMBER: _ClassVar[int]
    SUBTRACTFEEFROMAMOUNT_FIELD_NUMBER: _ClassVar[int]
    FEE_RATE_SAT_VB_FIELD_NUMBER: _ClassVar[int]
    REPLACEABLE_FIELD_NUMBER: _ClassVar[int]
    address: str
    amount_sat: int
    subtractfeefromamount: bool
    fee_rate_sat_vb: float
    replaceable: bool
    def __init__(self, address: _Optional[str] = ..., amount_sat: _Optional[int] = ..., subtractfeefromamount: _Optional[bool] = ..., fee_rate_sat_vb: _Optional[float] = ..., replaceable: _Optional[bool] = ...) -> None: ...

class SendToAddressResponse(_message.Message):
    __slots__ = ("txid", "fee_sat")
    TXID_FIELD_NUMBER: _ClassVar[int]
    FEE_SAT_FIELD_NUMBER: _ClassVar[int]
    txid: str
    fee_sat: int
    def __init__(self, txid: _Optional[str] = ..., fee_sat: _Optional[int] = ...) -> None: ...

class BumpFeeRequest(_message.Message):
    __slots__ = ("txid", "fee_rate_sat_vb")
    TXID_FIELD_NUMBER: _ClassVar[int]
    FEE_RATE_SAT_VB_FIELD_NUMBER: _ClassVar[int]
    txid: str
    fee_rate_sat_vb: float
    def __init__(self, txid: _Optional[str] = ..., fee_rate_sat_vb: _Optional[float] = ...) -> None: ...

class BumpFeeResponse(_message.Message):
    __slots__ = ("txid", "origfee_sat", "fee_sat", "errors")
    TXID_FIELD_NUMBER: _ClassVar[int]
    ORIGFEE_SAT_FIELD_NUMBER: _ClassVar[int]
    FEE_SAT_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    txid: str
    origfee_sat: int
    fee_sat: int
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, txid: _Optional[str] = ..., origfee_sat: _Optional[int] = ..., fee_sat: _Optional[int] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class GenerateToAddressRequest(_message.Message):
    __slots__ = ("nblocks", "address")
    NBLOCKS_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    nblocks: int
    address: str
    def __init__(self, nblocks: _Optional[int] = ..., address: _Optional[str] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("blockhashes",)
    BLOCKHASHES_FIELD_NUMBER: _ClassVar[int]
    blockhashes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, blockhashes: _Optional[_Iterable[str]] = ...) -> None: ...

class EstimateFeeRequest(_message.Message):
    __slots__ = ("conf_target",)
    CONF_TARGET_FIELD_NUMBER: _ClassVar[int]
    conf_target: int
    def __init__(self, conf_target: _Optional[int] = ...) -> None: ...

class EstimateFeeResponse(_message.Message):
    __slots__ = ("feerate_sat_vb", "blocks", "errors")
    FEERATE_SAT_VB_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    feerate_sat_vb: float
    blocks: int
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, feerate_sat_vb: _Optional[float] = ..., blocks: _Optional[int] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class AddNodeRequest(_message.Message):
    __slots__ = ("node", "command")
    NODE_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    node: str
    command: str
    def __init__(self, node: _Optional[str] = ..., command: _Optional[str] = ...) -> None: ...

class AddNodeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPeerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PeerInfo(_message.Message):
    __slots__ = ("id", "addr", "inbound", "version", "subver", "startingheight", "synced_headers", "synced_blocks", "conntime", "bytessent", "bytesrecv", "misbehavior")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    INBOUND_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SUBVER_FIELD_NUMBER: _ClassVar[int]
    STARTINGHEIGHT_FIELD_NUMBER: _ClassVar[int]
    SYNCED_HEADERS_FIELD_NUMBER: _ClassVar[int]
    SYNCED_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    CONNTIME_FIELD_NUMBER: _ClassVar[int]
    BYTESSENT_FIELD_NUMBER: _ClassVar[int]
    BYTESRECV_FIELD_NUMBER: _ClassVar[int]
    MISBEHAVIOR_FIELD_NUMBER: _ClassVar[int]
    id: int
    addr: str
    inbound: bool
    version: int
    subver: str
    startingheight: int
    synced_headers: int
    synced_blocks: int
    conntime: int
    bytessent: int
    bytesrecv: int
    misbehavior: int
    def __init__(self, id: _Optional[int] = ..., addr: _Optional[str] = ..., inbound: _Optional[bool] = ..., version: _Optional[int] = ..., subver: _Optional[str] = ..., startingheight: _Optional[int] = ..., synced_headers: _Optional[int] = ..., synced_blocks: _Optional[int] = ..., conntime: _Optional[int] = ..., bytessent: _Optional[int] = ..., bytesrecv: _Optional[int] = ..., misbehavior: _Optional[int] = ...) -> None: ...

class PeerInfoResponse(_message.Message):
    __slots__ = ("peers",)
    PEERS_FIELD_NUMBER: _ClassVar[int]
    peers: _containers.RepeatedCompositeFieldContainer[PeerInfo]
    def __init__(self, peers: _Optional[_Iterable[_Union[PeerInfo, _Mapping]]] = ...) -> None: ...

class GetTxOutProofRequest(_message.Message):
    __slots__ = ("txids", "blockhash")
    TXIDS_FIELD_NUMBER: _ClassVar[int]
    BLOCKHASH_FIELD_NUMBER: _ClassVar[int]
    txids: _containers.RepeatedScalarFieldContainer[str]
    blockhash: str
    def __init__(self, txids: _Optional[_Iterable[str]] = ..., blockhash: _Optional[str] = ...) -> None: ...

class TxOutProof(_message.Message):
    __slots__ = ("proof",)
    PROOF_FIELD_NUMBER: _ClassVar[int]
    proof: str
    def __init__(self, proof: _Optional[str] = ...) -> None: ...

class GetTxOutRequest(_message.Message):
    __slots__ = ("txid", "n", "include_mempool")
    TXID_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_MEMPOOL_FIELD_NUMBER: _ClassVar[int]
    txid: str
    n: int
    include_mempool: bool
    def __init__(self, txid: _Optional[str] = ..., n: _Optional[int] = ..., include_mempool: _Optional[bool] = ...) -> None: ...

class TxOutInfo(_message.Message):
    __slots__ = ("found", "bestblock", "confirmations", "value_sat", "script_pub_key", "coinbase")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    BESTBLOCK_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATIONS_FIELD_NUMBER: _ClassVar[int]
    VALUE_SAT_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_PUB_KEY_FIELD_NUMBER: _ClassVar[int]
    COINBASE_FIELD_NUMBER: _ClassVar[int]
    found: bool
    bestblock: str
    confirmations: int
    value_sat: int
    script_pub_key: ScriptPubKey
    coinbase: bool
    def __init__(self, found: _Optional[bool] = ..., bestblock: _Optional[str] = ..., confirmations: _Optional[int] = ..., value_sat: _Optional[int] = ..., script_pub_key: _Optional[_Union[ScriptPubKey, _Mapping]] = ..., coinbase: _Optional[bool] = ...) -> None: ...

class StopRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StopResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...

class SubscribeBlocksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BlockEvent(_message.Message):
    __slots__ = ("connected", "hash", "height", "header_hex", "txids")
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    HEADER_HEX_FIELD_NUMBER: _ClassVar[int]
    TXIDS_FIELD_NUMBER: _ClassVar[int]
    connected: bool
    hash: str
    height: int
    header_hex: str
    txids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, connected: _Optional[bool] = ..., hash: _Optional[str] = ..., height: _Optional[int] = ..., header_hex: _Optional[str] = ..., txids: _Optional[_Iterable[str]] = ...) -> None: ...

class ConfirmationRequest(_message.Message):
    __slots__ = ("txid", "script_pub_key", "num_confs", "height_hint")
    TXID_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_PUB_KEY_FIELD_NUMBER: _ClassVar[int]
    NUM_CONFS_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_HINT_FIELD_NUMBER: _ClassVar[int]
    txid: str
    script_pub_key: str
    num_confs: int
    height_hint: int
    def __init__(self, txid: _Optional[str] = ..., script_pub_key: _Optional[str] = ..., num_confs: _Optional[int] = ..., height_hint: _Optional[int] = ...) -> None: ...

class ConfirmationEvent(_message.Message):
    __slots__ = ("kind", "txid", "block_hash", "block_height", "tx_index", "raw_tx", "num_confs")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CONFIRMED: _ClassVar[ConfirmationEvent.Kind]
        REORGED: _ClassVar[ConfirmationEvent.Kind]
        UPDATE: _ClassVar[ConfirmationEvent.Kind]
    CONFIRMED: ConfirmationEvent.Kind
    REORGED: ConfirmationEvent.Kind
    UPDATE: ConfirmationEvent.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    TXID_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TX_INDEX_FIELD_NUMBER: _ClassVar[int]
    RAW_TX_FIELD_NUMBER: _ClassVar[int]
    NUM_CONFS_FIELD_NUMBER: _ClassVar[int]
    kind: ConfirmationEvent.Kind
    txid: str
    block_hash: str
    block_height: int
    tx_index: int
    raw_tx: str
    num_confs: int
    def __init__(self, kind: _Optional[_Union[ConfirmationEvent.Kind, str]] = ..., txid: _Optional[str] = ..., block_hash: _Optional[str] = ..., block_height: _Optional[int] = ..., tx_index: _Optional[int] = ..., raw_tx: _Optional[str] = ..., num_confs: _Optional[int] = ...) -> None: ...

class SpendRequest(_message.Message):
    __slots__ = ("txid", "vout", "script_pub_key", "height_hint", "include_mempool")
    TXID_FIELD_NUMBER: _ClassVar[int]
    VOUT_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_PUB_KEY_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_HINT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_MEMPOOL_FIELD_NUMBER: _ClassVar[int]
    txid: str
    vout: int
    script_pub_key: str
    height_hint: int
    include_mempool: bool
    def __init__(self, txid: _Optional[str] = ..., vout: _Optional[int] = ..., script_pub_key: _Optional[str] = ..., height_hint: _Optional[int] = ..., include_mempool: _Optional[bool] = ...) -> None: ...

class SpendEvent(_message.Message):
    __slots__ = ("kind", "spending_txid", "spending_input_index", "spending_tx", "spending_height")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SPENT: _ClassVar[SpendEvent.Kind]
        REORGED: _ClassVar[SpendEvent.Kind]
        MEMPOOL: _ClassVar[SpendEvent.Kind]
    SPENT: SpendEvent.Kind
    REORGED: SpendEvent.Kind
    MEMPOOL: SpendEvent.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    SPENDING_TXID_FIELD_NUMBER: _ClassVar[int]
    SPENDING_INPUT_INDEX_FIELD_NUMBER: _ClassVar[int]
    SPENDING_TX_FIELD_NUMBER: _ClassVar[int]
    SPENDING_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    kind: SpendEvent.Kind
    spending_txid: str
    spending_input_index: int
    spending_tx: str
    spending_height: int
    def __init__(self, kind: _Optional[_Union[SpendEvent.Kind, str]] = ..., spending_txid: _Optional[str] = ..., spending_input_index: _Optional[int] = ..., spending_tx: _Optional[str] = ..., spending_height: _Optional[int] = ...) -> None: ...

class SubscribeMempoolRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MempoolEvent(_message.Message):
    __slots__ = ("txid", "raw_tx", "added", "reason")
    TXID_FIELD_NUMBER: _ClassVar[int]
    RAW_TX_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    txid: str
    raw_tx: str
    added: bool
    reason: str
    def __init__(self, txid: _Optional[str] = ..., raw_tx: _Optional[str] = ..., added: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...
