from __future__ import annotations

import pytest

from smsflow.domain.smpp_status import (
    SMPP_STATUS_TABLE,
    UNKNOWN_STATUS_MAX_RETRIES,
    StatusCategory,
    classify,
    is_known_status,
    status_info,
    status_name,
)
from tests.paths import REPO_ROOT

DOC = REPO_ROOT / "docs" / "smpp.md"


@pytest.mark.parametrize(
    ("code", "name", "category"),
    [
        (0x00, "ESME_ROK", StatusCategory.OK),
        (0x58, "ESME_RTHROTTLED", StatusCategory.BACKPRESSURE),
        (0x14, "ESME_RMSGQFUL", StatusCategory.BACKPRESSURE),
        (0x08, "ESME_RSYSERR", StatusCategory.TEMPORARY),
        (0x45, "ESME_RSUBMITFAIL", StatusCategory.TEMPORARY),
        (0x64, "ESME_RX_T_APPN", StatusCategory.TEMPORARY),
        (0x0B, "ESME_RINVDSTADR", StatusCategory.PERMANENT),
        (0x0A, "ESME_RINVSRCADR", StatusCategory.PERMANENT),
        (0x01, "ESME_RINVMSGLEN", StatusCategory.PERMANENT),
        (0x65, "ESME_RX_P_APPN", StatusCategory.PERMANENT),
        (0x66, "ESME_RX_R_APPN", StatusCategory.PERMANENT),
        (0xFF, "ESME_RUNKNOWNERR", StatusCategory.TEMPORARY),
    ],
)
def test_known_codes(code: int, name: str, category: StatusCategory) -> None:
    assert classify(code) is category
    assert status_name(code) == name
    info = status_info(code)
    assert (info.code, info.name, info.category, info.known) == (code, name, category, True)
    assert is_known_status(code)


def test_unknown_code_is_temporary_with_bounded_retries() -> None:
    for code in (0x09, 0x400, 0x4FF, 0x12345, 0xFFFFFFFF):
        assert not is_known_status(code)
        assert classify(code) is StatusCategory.TEMPORARY
        info = status_info(code)
        assert not info.known
        assert info.max_retries == UNKNOWN_STATUS_MAX_RETRIES
    assert status_name(0x401) == "UNKNOWN_0x00000401"


def test_retry_caps() -> None:
    assert status_info(0x00).max_retries == 0
    assert status_info(0x0B).max_retries == 0
    assert status_info(0x58).max_retries is None  # backpressure: caller's pacing policy
    assert status_info(0x08).max_retries is None  # known temporary: caller's retry budget


def test_table_is_consistent() -> None:
    names = [name for name, _, _ in SMPP_STATUS_TABLE.values()]
    assert len(names) == len(set(names))
    assert all(name.startswith("ESME_R") for name in names)
    assert [c for c, (_, cat, _) in SMPP_STATUS_TABLE.items() if cat is StatusCategory.OK] == [0]
    backpressure = {
        c for c, (_, cat, _) in SMPP_STATUS_TABLE.items() if cat is StatusCategory.BACKPRESSURE
    }
    assert backpressure == {0x14, 0x58}
    with pytest.raises(TypeError):
        SMPP_STATUS_TABLE[0x999] = ("X", StatusCategory.OK, "")  # type: ignore[index]


@pytest.mark.parametrize("bad", [-1, 0x1_0000_0000])
def test_out_of_range(bad: int) -> None:
    with pytest.raises(ValueError):
        classify(bad)
    with pytest.raises(ValueError):
        status_name(bad)


def test_not_an_int() -> None:
    with pytest.raises(TypeError):
        classify("0x58")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        classify(True)


def test_docs_list_every_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name, _, _ in SMPP_STATUS_TABLE.values() if name not in text]
    assert not missing, f"docs/smpp.md lacks {missing}"
