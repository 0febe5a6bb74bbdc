"""Every decoder of input from outside the platform, fed with arbitrary and near-valid input.

The property is the same for each: a documented error type or a value, never any other
exception (which would crash a session thread, a consumer loop or an HTTP request) and never a
silent wrong answer where a round trip can check it. Targets:

* SMPP from the SMSC side: whole PDUs (``decode_pdu``), the byte stream cut anywhere
  (``FrameSplitter``), and the bodies the client parses itself (``deliver_sm``, ``data_sm``,
  ``submit_sm_resp``);
* delivery receipts: ``parse_receipt`` over arbitrary text and TLVs;
* Avro on the topics: every contract's codec over arbitrary bytes and truncated valid records;
* the HTTP API's message model over arbitrary JSON values;
* numbers: E.164 resolution of arbitrary strings;
* text: segmentation of arbitrary Unicode, reassembled.

``make test`` runs the ``ci`` profile (bounded, derandomized); ``bench/fuzz.py`` runs the
``fuzz`` profile with many more examples and reports the counts.
"""

from __future__ import annotations

import functools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from api.messages import MessageIn
from connectors.smpp.codec.client_bodies import parse_data_sm, parse_deliver_sm, parse_message_id
from connectors.smpp.codec.pdus import decode_pdu, pack_pdu
from connectors.smpp.codec.primitives import FrameSplitter, PduError
from schemas.codec import DecodeError, codec
from schemas.registry import contracts
from smsflow.config.store import load_yaml
from smsflow.domain.encoding import plan_segments, reassemble
from smsflow.domain.numbering import NumberRejection, build_numbering, resolve
from smsflow.domain.receipts import IdFormat, ReceiptError, parse_receipt
from smsflow.domain.validation import MAX_PARTS
from tests.paths import PLATFORM_CONFIG

COMMAND_IDS = st.sampled_from([0x80000004, 0x00000005, 0x00000103, 0x80000009, 0x00000015,
                               0x00000006, 0x80000000, 0x00000102, 0x12345678])
TLVS = st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=40), max_size=6)


# ------------------------------------------------------------------ SMPP


@given(st.binary(max_size=600))
def test_arbitrary_frames_decode_or_raise_pdu_error(frame: bytes) -> None:
    try:
        decode_pdu(frame)
    except PduError:
        pass


@given(COMMAND_IDS, st.integers(0, 2**31 - 1), st.binary(max_size=400),
       st.integers(0, 0xFFFFFFFF))
def test_well_framed_garbage_bodies_decode_or_raise_pdu_error(
    command_id: int, sequence: int, body: bytes, status: int
) -> None:
    try:
        pdu = decode_pdu(pack_pdu(command_id, sequence, body, status))
    except PduError:
        return
    assert pdu.sequence_number == sequence


@given(st.lists(st.binary(min_size=1, max_size=64), max_size=20))
def test_a_stream_cut_anywhere_yields_frames_or_a_frame_error(chunks: list[bytes]) -> None:
    splitter = FrameSplitter()
    try:
        for chunk in chunks:
            for frame in splitter.feed(chunk):
                assert len(frame) >= 16
    except PduError:
        pass


@given(st.binary(max_size=40), st.binary(max_size=500))
def test_valid_frames_survive_any_chunking(cut_points: bytes, body: bytes) -> None:
    frames = [pack_pdu(0x00000005, n, body[: n * 7 % (len(body) + 1)]) for n in range(1, 4)]
    stream = b"".join(frames)
    splitter, got, pos = FrameSplitter(), [], 0
    for cut in sorted({b % (len(stream) + 1) for b in cut_points} | {len(stream)}):
        got += splitter.feed(stream[pos:cut])
        pos = cut
    assert got == frames and splitter.buffered == 0


@given(st.binary(max_size=400))
def test_client_side_bodies_parse_or_raise_pdu_error(body: bytes) -> None:
    for parse in (parse_deliver_sm, parse_data_sm, parse_message_id):
        try:
            parse(body)
        except PduError:
            pass


# ------------------------------------------------------------------ receipts


RECEIPT_WORDS = st.sampled_from(["id:", "sub:", "dlvrd:", "submit date:", "done date:",
                                 "stat:", "err:", "text:", "DELIVRD", "UNDELIV", "EXPIRED",
                                 "REJECTD", " ", "0", "1", "2612041200", "abc", "\x00", "é"])


@given(st.one_of(st.binary(max_size=300),
                 st.lists(RECEIPT_WORDS, max_size=30).map(lambda w: "".join(w).encode())),
       TLVS, st.sampled_from(list(IdFormat)))
def test_receipts_parse_or_raise_receipt_error(text: bytes, tlvs: dict[int, bytes],
                                               id_format: IdFormat) -> None:
    try:
        receipt = parse_receipt(text, tlvs, id_format=id_format)
    except ReceiptError:
        return
    assert receipt.smsc_message_id


# ------------------------------------------------------------------ Avro


@functools.cache
def _contract_names() -> list[str]:
    return sorted(contracts())


@given(st.data(), st.binary(max_size=300))
def test_arbitrary_bytes_on_a_topic_decode_or_raise_decode_error(data: Any, raw: bytes) -> None:
    name = data.draw(st.sampled_from(_contract_names()))
    try:
        codec(name).decode(raw)
    except DecodeError:
        pass


@given(st.data())
def test_truncated_and_flipped_records_decode_or_raise_decode_error(data: Any) -> None:
    from tests.unit.schemas.test_wire import model_sample

    name = data.draw(st.sampled_from(_contract_names()))
    valid = bytearray(codec(name).encode(model_sample(name).model_dump(mode="python")))
    cut = data.draw(st.integers(0, len(valid)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(1, 255)),
                               max_size=3))
    for index, mask in flips:
        valid[index] ^= mask
    try:
        codec(name).decode(bytes(valid[:cut]) if not flips else bytes(valid))
    except DecodeError:
        pass


# ------------------------------------------------------------------ the HTTP API


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12,
)


@given(st.fixed_dictionaries({}, optional={
    "destination": st.one_of(JSON, st.text(alphabet="+0123456789 -", max_size=20)),
    "source": st.one_of(JSON, st.text(max_size=15)),
    "body": st.one_of(JSON, st.text(max_size=2000)),
    "message_type": JSON,
    "client_ref": JSON,
}) | st.dictionaries(st.text(max_size=12), JSON, max_size=6))
def test_api_messages_validate_or_raise_validation_error(payload: dict[str, Any]) -> None:
    try:
        MessageIn.model_validate(payload)
    except ValidationError:
        pass


# ------------------------------------------------------------------ numbers and text


@functools.cache
def _plan() -> Any:
    return build_numbering(load_yaml(PLATFORM_CONFIG).operators)


@given(st.one_of(st.text(max_size=25),
                 st.text(alphabet="+0123456789", max_size=20),
                 st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)))
def test_any_destination_resolves_or_is_refused_with_a_reason(destination: str) -> None:
    result = resolve(_plan(), destination)
    if isinstance(result, NumberRejection):
        assert result.reason_code
    else:
        assert result.e164.startswith("+") and result.e164[1:].isdigit()


@given(st.text(max_size=1600), st.integers(0, 255))
def test_text_splits_into_parts_that_reassemble_to_it(text: str, reference: int) -> None:
    try:
        plan = plan_segments(text, reference)
    except ValueError:
        return  # longer than MAX_PARTS parts: the documented refusal
    assert 1 <= plan.part_count <= MAX_PARTS
    assert all(len(payload) <= 140 for payload in plan.payloads), "one SMS holds 140 octets"
    assert reassemble(plan.payloads, plan.data_coding, udhi=plan.is_multipart) == text
