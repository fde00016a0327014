"""`as_of`, `from`, `to`: a sequence or a time, never a crash (issue 16's 500s)."""

from __future__ import annotations

import pytest

from kpi_common.as_of import LARGEST_SEQUENCE, AsOf
from kpi_common.problems import Problem


def test_a_sequence_beyond_any_log_is_the_head() -> None:
    assert AsOf.parse("9223372036854775808") == AsOf(sequence=LARGEST_SEQUENCE)
    assert AsOf.parse("1200") == AsOf(sequence=1200)


@pytest.mark.parametrize("raw", ["²", "١٢", "9" * 4301, "2025-13-40", "x" * 100])
def test_what_is_neither_a_sequence_nor_a_time_is_a_422_naming_as_of(raw: str) -> None:
    with pytest.raises(Problem) as refused:
        AsOf.parse(raw)
    assert refused.value.status == 422 and refused.value.errors[0]["field"] == "as_of"
