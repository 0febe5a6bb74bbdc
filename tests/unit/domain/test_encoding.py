from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsflow.domain.encoding import (
    DATA_CODING_GSM7,
    DATA_CODING_UCS2,
    ESM_CLASS_UDHI,
    EncodingError,
    Segment,
    TextEncoding,
    concat_udh,
    decode_payload,
    detect_encoding,
    gsm7_decode,
    gsm7_encode,
    gsm7_septets,
    is_gsm7,
    plan_segments,
    reassemble,
    ucs2_units,
)

GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = "\f^{}\\[~]|€"


def _roundtrip(text: str) -> str:
    plan = plan_segments(text, 42)
    return reassemble(plan.payloads, plan.data_coding, udhi=plan.is_multipart)


# ---------------------------------------------------------------- detection / counting


def test_gsm_alphabet() -> None:
    assert len(GSM_BASIC) == 127  # 128 septets minus ESC
    assert is_gsm7(GSM_BASIC + GSM_EXTENSION)
    assert gsm7_septets(GSM_BASIC) == 127
    assert gsm7_septets(GSM_EXTENSION) == 20
    assert gsm7_encode("@") == b"\x00"
    assert gsm7_encode("€") == b"\x1b\x65"
    assert gsm7_encode("§") == b"\x5f"
    assert gsm7_decode(gsm7_encode(GSM_BASIC + GSM_EXTENSION)) == GSM_BASIC + GSM_EXTENSION


@pytest.mark.parametrize("text", ["`", "ç", "á", "\u2019", "\t", "😀", "Привет", "\x1b"])
def test_non_gsm_characters(text: str) -> None:
    assert not is_gsm7(text)
    assert detect_encoding("abc" + text) is TextEncoding.UCS2
    with pytest.raises(EncodingError):
        gsm7_encode(text)


def test_ucs2_units_count_surrogates() -> None:
    assert ucs2_units("aé") == 2
    assert ucs2_units("😀") == 2
    assert ucs2_units("a😀b") == 4


# ---------------------------------------------------------------- GSM-7 limits


def test_gsm7_160_is_single_part() -> None:
    plan = plan_segments("a" * 160)
    assert plan.encoding is TextEncoding.GSM7
    assert plan.data_coding == DATA_CODING_GSM7 == 0x00
    assert plan.part_count == 1
    assert plan.esm_class == 0
    assert plan.reference is None
    assert plan.payloads == (b"a" * 160,)  # unpacked: one septet per octet
    assert plan.segments[0].udh == b""


def test_gsm7_161_is_two_parts() -> None:
    plan = plan_segments("a" * 161, 7)
    assert plan.part_count == 2
    assert plan.esm_class == ESM_CLASS_UDHI
    assert [s.units for s in plan.segments] == [153, 8]
    assert plan.payloads[0] == b"\x05\x00\x03\x07\x02\x01" + b"a" * 153
    assert plan.payloads[1] == b"\x05\x00\x03\x07\x02\x02" + b"a" * 8
    assert plan.units == 161


def test_gsm7_multipart_boundaries() -> None:
    assert plan_segments("a" * 306).part_count == 2
    assert plan_segments("a" * 307).part_count == 3
    assert plan_segments("a" * 153 * 255).part_count == 255
    with pytest.raises(EncodingError):
        plan_segments("a" * (153 * 255 + 1))
    with pytest.raises(EncodingError):
        plan_segments("a" * 1000, max_parts=3)


def test_extension_chars_cost_two_septets() -> None:
    assert plan_segments("€" * 80).part_count == 1  # 160 septets
    plan = plan_segments("€" * 80 + "a")  # 161 septets
    assert plan.encoding is TextEncoding.GSM7
    assert plan.part_count == 2
    assert plan.units == 161


def test_escape_sequence_never_split() -> None:
    # 152 plain septets then '€' (2 septets) would straddle the 153-septet boundary.
    text = "a" * 152 + "€" + "b" * 20
    plan = plan_segments(text)
    first, second = plan.segments
    assert first.units == 152
    assert first.body == b"a" * 152
    assert second.body.startswith(b"\x1b\x65")
    assert not first.body.endswith(b"\x1b")
    assert _roundtrip(text) == text


# ---------------------------------------------------------------- UCS-2 limits


def test_ucs2_70_is_single_part() -> None:
    plan = plan_segments("Ж" * 70)
    assert plan.encoding is TextEncoding.UCS2
    assert plan.data_coding == DATA_CODING_UCS2 == 0x08
    assert plan.part_count == 1
    assert plan.payloads == (("Ж" * 70).encode("utf-16-be"),)


def test_ucs2_71_is_two_parts() -> None:
    plan = plan_segments("Ж" * 71, 200)
    assert plan.part_count == 2
    assert [s.units for s in plan.segments] == [67, 4]
    assert plan.payloads[0][:6] == bytes([5, 0, 3, 200, 2, 1])
    assert len(plan.payloads[0]) == 6 + 134


def test_one_non_gsm_char_switches_whole_text_to_ucs2() -> None:
    plan = plan_segments("a" * 100 + "ç")
    assert plan.encoding is TextEncoding.UCS2
    assert plan.part_count == 2


def test_emoji_count_two_units() -> None:
    assert plan_segments("😀" * 35).part_count == 1  # 70 units
    plan = plan_segments("😀" * 35 + "a")  # 71 units
    assert plan.part_count == 2
    assert plan.units == 71


def test_surrogate_pair_never_split() -> None:
    text = "a" * 66 + "😀" + "b" * 10  # the pair would occupy units 67 and 68
    plan = plan_segments(text)
    first, second = plan.segments
    assert first.units == 66
    assert second.body.startswith("😀".encode("utf-16-be"))
    for segment in plan.segments:  # every part decodes on its own
        segment.body.decode("utf-16-be")
    assert _roundtrip(text) == text


def test_lone_surrogate_rejected() -> None:
    with pytest.raises(EncodingError):
        plan_segments("a\ud800b")


# ---------------------------------------------------------------- misc API


def test_empty_text() -> None:
    plan = plan_segments("")
    assert plan.part_count == 1
    assert plan.payloads == (b"",)
    assert _roundtrip("") == ""


@pytest.mark.parametrize("ref", [-1, 256])
def test_reference_range(ref: int) -> None:
    with pytest.raises(ValueError):
        plan_segments("a" * 200, ref)


def test_reference_is_used_in_every_part() -> None:
    plan = plan_segments("x" * 500, 255)
    assert {p[3] for p in plan.payloads} == {255}
    assert [p[5] for p in plan.payloads] == [1, 2, 3, 4]
    assert {p[4] for p in plan.payloads} == {4}


def test_concat_udh_validation() -> None:
    assert concat_udh(1, 3, 2) == b"\x05\x00\x03\x01\x03\x02"
    for args in ((256, 1, 1), (0, 0, 0), (0, 2, 3), (0, 256, 1)):
        with pytest.raises(ValueError):
            concat_udh(*args)


def test_select_parts_for_resend() -> None:
    plan = plan_segments("z" * 400, 9)
    sub = plan.select([3, 1])
    assert [s.seq for s in sub.segments] == [1, 3]
    assert sub.payloads == (plan.payloads[0], plan.payloads[2])
    assert sub.esm_class == ESM_CLASS_UDHI
    assert plan.select([2, 3, 1]) is plan  # every part: the plan itself, nothing rebuilt
    with pytest.raises(ValueError):
        plan.select([4])
    with pytest.raises(ValueError):
        plan.select([])


def test_decode_payload() -> None:
    plan = plan_segments("Ж" * 80, 3)
    udh, text = decode_payload(plan.payloads[1], plan.data_coding, udhi=True)
    assert udh == b"\x05\x00\x03\x03\x02\x02"
    assert text == "Ж" * 13
    assert decode_payload(b"abc", 0, udhi=False) == (b"", "abc")
    with pytest.raises(EncodingError):
        decode_payload(b"abc", 0x04, udhi=False)


def test_reassemble_out_of_order_and_errors() -> None:
    plan = plan_segments("q" * 400, 1)
    assert reassemble(list(reversed(plan.payloads)), plan.data_coding, udhi=True) == "q" * 400
    with pytest.raises(EncodingError):
        reassemble(plan.payloads[:2], plan.data_coding, udhi=True)
    with pytest.raises(EncodingError):
        reassemble(plan.payloads, plan.data_coding, udhi=False)


# ---------------------------------------------------------------- properties

_gsm_text = st.text(alphabet=st.sampled_from(GSM_BASIC + GSM_EXTENSION), max_size=1200)
_any_text = st.text(max_size=600)  # hypothesis excludes lone surrogates by default


@settings(max_examples=200, deadline=None)
@given(st.one_of(_gsm_text, _any_text), st.integers(min_value=0, max_value=255))
def test_segments_reassemble_to_original(text: str, ref: int) -> None:
    plan = plan_segments(text, ref)
    assert reassemble(plan.payloads, plan.data_coding, udhi=plan.is_multipart) == text
    gsm = plan.encoding is TextEncoding.GSM7
    single, multi = (160, 153) if gsm else (70, 67)
    assert plan.units == (gsm7_septets(text) if gsm else ucs2_units(text))
    if plan.units <= single:
        assert plan.part_count == 1
    else:
        assert all(s.units <= multi for s in plan.segments)
        assert all(len(s.udh) == 6 and s.payload[3] == ref for s in plan.segments)
        # greedy packing: each part but the last is full up to an indivisible unit
        assert all(s.units >= multi - 1 for s in plan.segments[:-1])
    for segment in plan.segments:
        if gsm:
            assert len(segment.payload) <= 6 + 160
            assert not segment.body.endswith(b"\x1b")  # no split escape sequence
        else:
            assert len(segment.payload) <= 140
            segment.body.decode("utf-16-be")  # no split surrogate pair


def _unpacked_by_reference(text: str) -> bytes | None:
    """The first, plainly correct encoder: one dictionary lookup per character."""
    from smsflow.domain.encoding import _ENCODE

    try:
        return b"".join(_ENCODE[ch] for ch in text)
    except KeyError:
        return None


@settings(max_examples=300, deadline=None)
@given(st.one_of(_gsm_text, _any_text, st.text(alphabet=st.sampled_from(GSM_BASIC + "é€ж"),
                                                 max_size=200)))
def test_the_c_speed_gsm7_paths_agree_with_a_lookup_per_character(text: str) -> None:
    expected = _unpacked_by_reference(text)
    assert is_gsm7(text) is (expected is not None)
    if expected is None:
        with pytest.raises(EncodingError):
            gsm7_encode(text)
        return
    assert gsm7_encode(text) == expected
    assert gsm7_septets(text) == len(expected)
    plan = plan_segments(text)
    assert b"".join(s.body for s in plan.segments) == expected
    if len(expected) <= 160:
        assert plan.segments == (Segment(1, expected, b"", len(expected)),)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_gsm_text, _any_text,
                 st.text(alphabet=st.sampled_from("aé€ж😀"), min_size=60, max_size=400)))
def test_the_parts_are_the_greedy_packing_of_one_group_per_character(text: str) -> None:
    """Texts of equal units (no extension character, no surrogate pair) are cut in slices
    instead of packed group by group: the parts must be the same."""
    from smsflow.domain.encoding import _ENCODE, _pack_units

    plan = plan_segments(text)
    gsm = plan.encoding is TextEncoding.GSM7
    groups = [_ENCODE[ch] for ch in text] if gsm else [ch.encode("utf-16-be") for ch in text]
    if plan.part_count == 1:
        assert plan.segments[0].body == b"".join(groups)
        return
    packed = [b"".join(part) for part in _pack_units(groups, 153 if gsm else 134)]
    assert [s.body for s in plan.segments] == packed
