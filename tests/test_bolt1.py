"""BOLT 1 Appendix A (BigSize), B (TLV) and D (signed integers) vectors, parsed from
../shared/vectors/bolts/bolt01-vectors.md at test time, plus property tests."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import vectors
from channels.tlv import (
    U64_MAX,
    Reader,
    TlvError,
    TlvNamespace,
    TlvRecord,
    TlvRecordType,
    TlvStream,
    decode_bigsize,
    decode_signed,
    decode_tlv_records,
    encode_bigsize,
    encode_signed,
    encode_tlv_records,
    encode_tu16,
    encode_tu32,
    encode_tu64,
    encode_u16,
    encode_u64,
)

TEXT = vectors.text("bolts", "bolt01-vectors.md")


# ---------------------------------------------------------------------------
# Markdown parsing


def _sections(text: str) -> dict[str, str]:
    """Heading title (## or ###) -> the text up to the next heading."""
    out: dict[str, str] = {}
    parts = re.split(r"^#{2,3} (.+)$", text, flags=re.M)
    for title, body in zip(parts[1::2], parts[2::2]):
        out[title.strip()] = body
    return out


SECTIONS = _sections(TEXT)


def _json_block(section: str) -> list[dict[str, Any]]:
    blocks = re.findall(r"```json\n(.*?)```", SECTIONS[section], flags=re.S)
    assert len(blocks) == 1, f"expected one json block in {section!r}"
    data = json.loads(blocks[0])
    assert isinstance(data, list)
    return data


BIGSIZE_DECODING = _json_block("BigSize Decoding Tests")
BIGSIZE_ENCODING = _json_block("BigSize Encoding Tests")
SIGNED = _json_block("Appendix D: Signed Integers Test Vectors")


@dataclass(frozen=True)
class TlvCase:
    section: str
    namespaces: tuple[str, ...]
    stream: bytes
    valid: bool
    note: str  # Reason / Explanation / Values

    @property
    def id(self) -> str:
        return f"{'/'.join(self.namespaces)}:0x{self.stream.hex() or '(empty)'}"


def _hex(s: str) -> bytes:
    s = s.strip()
    assert s.startswith("0x"), s
    return bytes.fromhex(s[2:].replace(" ", ""))


def _scope(paragraph: str) -> tuple[str, ...]:
    if "any namespace" in paragraph or "either namespace" in paragraph:
        return ("n1", "n2")
    found = tuple(ns for ns in ("n1", "n2") if f"`{ns}`" in paragraph)
    assert len(found) == 1, f"cannot tell the namespace of: {paragraph!r}"
    return found


def _tlv_cases() -> list[TlvCase]:
    cases: list[TlvCase] = []
    for section in ("TLV Decoding Failures", "TLV Decoding Successes", "TLV Stream Decoding Failure"):
        scope: tuple[str, ...] | None = None
        paragraph: list[str] = []
        lines = SECTIONS[section].splitlines()
        i = 0
        while i < len(lines):
            line = lines[i].strip()
            m = re.match(r"1\. (Invalid|Valid) stream: (0x.*)$", line)
            if m:
                note = lines[i + 1].strip()
                assert re.match(r"2\. (Reason|Explanation|Values): ", note), note
                assert scope is not None, f"stream before any namespace sentence in {section}"
                cases.append(TlvCase(section, scope, _hex(m.group(2)), m.group(1) == "Valid", note[3:]))
                i += 2
                continue
            if line:
                paragraph.append(line)
            else:
                text = " ".join(paragraph)
                if "following TLV stream" in text:
                    scope = _scope(text)
                paragraph = []
            i += 1
    return cases


TLV_CASES = _tlv_cases()


def test_vector_counts() -> None:
    """A slip in the markdown parsing must not silently drop vectors."""
    assert len(BIGSIZE_DECODING) == 18
    assert len(BIGSIZE_ENCODING) == 8
    assert len(SIGNED) == 23
    by_kind: dict[tuple[str, tuple[str, ...], bool], int] = {}
    for c in TLV_CASES:
        key = (c.section, c.namespaces, c.valid)
        by_kind[key] = by_kind.get(key, 0) + 1
    assert by_kind == {
        ("TLV Decoding Failures", ("n1", "n2"), False): 13,  # 9 "any namespace" + 4 "either namespace"
        ("TLV Decoding Failures", ("n1",), False): 20,
        ("TLV Decoding Successes", ("n1", "n2"), True): 7,
        ("TLV Decoding Successes", ("n1",), True): 12,
        ("TLV Stream Decoding Failure", ("n1",), False): 4,
        ("TLV Stream Decoding Failure", ("n2",), False): 1,
    }
    assert len(TLV_CASES) == 57


# ---------------------------------------------------------------------------
# Appendix A: BigSize


@pytest.mark.parametrize("case", BIGSIZE_DECODING, ids=lambda c: c["name"])
def test_bigsize_decoding(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["bytes"])
    if "exp_error" in case:
        with pytest.raises(TlvError) as err:
            decode_bigsize(data)
        assert err.value.reason == case["exp_error"]
    else:
        assert decode_bigsize(data) == case["value"]


@pytest.mark.parametrize("case", BIGSIZE_ENCODING, ids=lambda c: c["name"])
def test_bigsize_encoding(case: dict[str, Any]) -> None:
    assert encode_bigsize(case["value"]).hex() == case["bytes"]


@given(st.integers(min_value=0, max_value=U64_MAX))
def test_bigsize_round_trip(value: int) -> None:
    data = encode_bigsize(value)
    assert decode_bigsize(data) == value
    assert len(data) == (1 if value < 0xFD else 3 if value < 0x10000 else 5 if value < 0x100000000 else 9)


@given(st.binary(max_size=10))
def test_bigsize_decode_never_crashes(data: bytes) -> None:
    try:
        value = decode_bigsize(data)
    except TlvError:
        return
    assert encode_bigsize(value) == data  # whatever decodes is the canonical encoding


def test_bigsize_encode_range() -> None:
    with pytest.raises(ValueError):
        encode_bigsize(-1)
    with pytest.raises(ValueError):
        encode_bigsize(U64_MAX + 1)


# ---------------------------------------------------------------------------
# Appendix D: signed integers


@pytest.mark.parametrize("case", SIGNED, ids=lambda c: str(c["value"]))
def test_signed_integers(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["bytes"])
    width = len(data)
    assert decode_signed(data) == case["value"]
    assert encode_signed(case["value"], width) == data
    reader = Reader(data)
    assert {1: reader.s8, 2: reader.s16, 4: reader.s32, 8: reader.s64}[width]() == case["value"]
    # The vectors use the narrowest type that holds the value.
    if width > 1:
        with pytest.raises(ValueError):
            encode_signed(case["value"], width // 2)


@given(st.sampled_from([1, 2, 4, 8]), st.data())
def test_signed_round_trip(width: int, data: st.DataObject) -> None:
    bound = 1 << (8 * width - 1)
    value = data.draw(st.integers(min_value=-bound, max_value=bound - 1))
    assert decode_signed(encode_signed(value, width)) == value


# ---------------------------------------------------------------------------
# Appendix B: TLV streams. n1 and n2 are declared as the appendix declares them.


def _scid(text: str) -> int:
    block, tx, out = (int(x) for x in text.split("x"))
    return block << 40 | tx << 16 | out


N1_TLV1 = TlvRecordType(1, "tlv1", lambda r: {"amount_msat": r.tu64()}, lambda v: encode_tu64(v["amount_msat"]))
N1_TLV2 = TlvRecordType(2, "tlv2", lambda r: {"scid": r.u64()}, lambda v: encode_u64(v["scid"]))
def _read_tlv3(r: Reader) -> dict[str, Any]:
    return {"node_id": r.point().to_bytes().hex(), "amount_msat_1": r.u64(), "amount_msat_2": r.u64()}


def _write_tlv3(v: dict[str, Any]) -> bytes:
    return bytes.fromhex(v["node_id"]) + encode_u64(v["amount_msat_1"]) + encode_u64(v["amount_msat_2"])


N1_TLV3 = TlvRecordType(3, "tlv3", _read_tlv3, _write_tlv3)
N1_TLV4 = TlvRecordType(254, "tlv4", lambda r: {"cltv_delta": r.u16()}, lambda v: encode_u16(v["cltv_delta"]))
N2_TLV1 = TlvRecordType(0, "tlv1", lambda r: {"amount_msat": r.tu64()}, lambda v: encode_tu64(v["amount_msat"]))
N2_TLV2 = TlvRecordType(11, "tlv2", lambda r: {"cltv_expiry": r.tu32()}, lambda v: encode_tu32(v["cltv_expiry"]))

NAMESPACES = {
    "n1": TlvNamespace("n1", N1_TLV1, N1_TLV2, N1_TLV3, N1_TLV4),
    "n2": TlvNamespace("n2", N2_TLV1, N2_TLV2),
}


def _expected_values(note: str) -> tuple[str, dict[str, Any]]:
    """'Values: `tlv3` `node_id`=02.. `amount_msat_1`=1' -> ("tlv3", {...})."""
    assert note.startswith("Values: ")
    record = re.match(r"Values: `(\w+)`", note)
    assert record is not None
    fields: dict[str, Any] = {}
    for name, value in re.findall(r"`(\w+)`=(\S+)", note):
        if name == "node_id":
            fields[name] = value
        elif name == "scid":
            fields[name] = _scid(value)
        else:
            fields[name] = int(value)
    assert fields, note
    return record.group(1), fields


# What each vector's stated reason must show up as in TlvError.reason.
_REASONS = [
    ("not minimally encoded type", "type not minimally encoded"),
    ("not minimally encoded length", "length not minimally encoded"),
    ("type truncated", "type truncated"),
    ("missing length", "length truncated"),
    ("length truncated", "length truncated"),
    ("missing value", "value truncated"),
    ("value truncated", "value truncated"),
    ("unknown even", "unknown even tlv type"),
    ("greater than encoding length", "longer than its encoding"),
    ("less than encoding length", "shorter than its encoding"),
    ("is not minimal", "not minimal"),
    ("not a valid point", "not a valid point"),
    ("duplicate", "duplicate tlv type"),
    ("invalid ordering", "not strictly increasing"),
]


def _expected_reason(note: str) -> str:
    for phrase, fragment in _REASONS:
        if phrase in note:
            return fragment
    raise AssertionError(f"no expected reason for vector note {note!r}")


def _cases_for(ns: str, valid: bool) -> list[TlvCase]:
    return [c for c in TLV_CASES if ns in c.namespaces and c.valid == valid]


@pytest.mark.parametrize(
    "case,ns", [(c, ns) for c in TLV_CASES for ns in c.namespaces], ids=lambda x: x.id if isinstance(x, TlvCase) else x
)
def test_tlv_vector(case: TlvCase, ns: str) -> None:
    namespace = NAMESPACES[ns]
    if not case.valid:
        with pytest.raises(TlvError) as err:
            namespace.decode(case.stream)
        assert _expected_reason(case.note) in err.value.reason, (case.note, err.value.reason)
        return
    stream = namespace.decode(case.stream)
    assert stream.encode() == case.stream  # canonical streams re-encode byte for byte
    if case.note.startswith("Explanation: "):
        # "should correctly decode, and be ignored": nothing known, any unknown odd record kept raw.
        assert all(rt not in stream for rt in namespace.record_types)
        assert all(t % 2 == 1 for t, _ in stream.unknown)
        assert len(stream.unknown) == (0 if case.stream == b"" else 1)
    else:
        name, fields = _expected_values(case.note)
        (record,) = [rt for rt in namespace.record_types if rt.name == name]
        assert stream.get(record) == fields
        assert stream.unknown == ()


def _types(data: bytes) -> list[int]:
    return [t for t, _ in decode_tlv_records(data)]


@pytest.mark.parametrize("ns", ["n1", "n2"])
def test_tlv_appending_invalid_to_valid_fails(ns: str) -> None:
    """"Any appending of an invalid stream to a valid stream should trigger a decoding failure.\""""
    namespace = NAMESPACES[ns]
    valid, invalid = _cases_for(ns, True), _cases_for(ns, False)
    pairs = 0
    for v in valid:
        for bad in invalid:
            with pytest.raises(TlvError):
                namespace.decode(v.stream + bad.stream)
            pairs += 1
    assert pairs == len(valid) * len(invalid) and pairs > 0


@pytest.mark.parametrize("ns", ["n1", "n2"])
def test_tlv_appending_higher_valid_to_lower_valid(ns: str) -> None:
    """"Any appending of a higher-numbered valid stream to a lower-numbered valid stream should not fail.\""""
    namespace = NAMESPACES[ns]
    valid = [c for c in _cases_for(ns, True) if c.stream]
    pairs = 0
    for a in valid:
        for b in valid:
            if max(_types(a.stream)) < min(_types(b.stream)):
                joined = namespace.decode(a.stream + b.stream)
                first, second = namespace.decode(a.stream), namespace.decode(b.stream)
                assert joined.records() == first.records() + second.records()
                assert joined.encode() == a.stream + b.stream
                pairs += 1
    assert pairs > 0


# ---------------------------------------------------------------------------
# Truncated integers and the rest of the toolbox


@pytest.mark.parametrize(
    "encode,read,width",
    [(encode_tu16, Reader.tu16, 2), (encode_tu32, Reader.tu32, 4), (encode_tu64, Reader.tu64, 8)],
)
def test_truncated_integers(encode: Any, read: Any, width: int) -> None:
    assert encode(0) == b""
    assert read(Reader(b"")) == 0
    assert encode(1) == b"\x01"
    top = (1 << (8 * width)) - 1
    assert encode(top) == b"\xff" * width
    assert read(Reader(b"\xff" * width)) == top
    with pytest.raises(ValueError):
        encode(top + 1)
    with pytest.raises(TlvError, match="not minimal"):
        read(Reader(b"\x00\x01"))
    with pytest.raises(TlvError, match="not minimal"):
        read(Reader(b"\x00"))
    with pytest.raises(TlvError, match="longer than its encoding"):
        read(Reader(b"\x01" * (width + 1)))


@given(st.integers(min_value=0, max_value=U64_MAX))
def test_tu64_round_trip(value: int) -> None:
    data = encode_tu64(value)
    assert Reader(data).tu64() == value
    assert data[:1] != b"\x00"


def test_reader_reasons() -> None:
    r = Reader(b"\x01\x02\x03")
    assert r.u16() == 0x0102
    with pytest.raises(TlvError, match="shorter than its encoding"):
        r.u16()
    with pytest.raises(TlvError, match="longer than its encoding"):
        r.finish()
    assert Reader(b"\xfd\x00\xfd").bigsize() == 0xFD
    with pytest.raises(TlvError, match="not canonical"):
        Reader(b"\xfd\x00\x01").bigsize()
    with pytest.raises(TlvError, match="shorter than its encoding"):
        Reader(b"\xfe\x00").bigsize()


def test_stream_set_get_and_unknown() -> None:
    stream = TlvStream([TlvRecord(5, b"x")]).set(N1_TLV1, {"amount_msat": 1000}).set(N1_TLV4, {"cltv_delta": 9})
    data = stream.encode()
    assert _types(data) == [1, 5, 254]
    back = NAMESPACES["n1"].decode(data)
    assert back == stream
    assert back.get(N1_TLV1) == {"amount_msat": 1000}
    assert back.get(N1_TLV2) is None
    assert back.unknown == (TlvRecord(5, b"x"),)
    assert back.remove(5).unknown == ()
    assert N1_TLV4 in back and 5 in back and 7 not in back


def test_namespace_rejects_duplicate_declarations() -> None:
    with pytest.raises(ValueError):
        TlvNamespace("bad", N1_TLV1, N2_TLV2, TlvRecordType(1, "again", Reader.tu64, encode_tu64))


def test_encode_rejects_duplicate_types() -> None:
    with pytest.raises(ValueError):
        encode_tlv_records([TlvRecord(3, b""), TlvRecord(3, b"a")])


_records = st.dictionaries(
    st.integers(min_value=0, max_value=U64_MAX), st.binary(max_size=300), max_size=8
).map(lambda d: [TlvRecord(t, v) for t, v in sorted(d.items())])


@given(_records)
def test_tlv_records_round_trip(records: list[TlvRecord]) -> None:
    data = encode_tlv_records(reversed(records))  # the encoder sorts
    assert decode_tlv_records(data) == records
    odd_only = [r for r in records if r.type % 2 == 1]
    stream = TlvNamespace("empty").decode(encode_tlv_records(odd_only))
    assert list(stream.unknown) == odd_only
    assert stream.encode() == encode_tlv_records(odd_only)


@given(st.binary(max_size=64))
def test_tlv_decode_never_crashes(data: bytes) -> None:
    for namespace in NAMESPACES.values():
        try:
            stream = namespace.decode(data)
        except TlvError:
            continue
        assert stream.encode() == data
