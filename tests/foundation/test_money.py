"""The kernel's one money parser (ecbao.money): yuan text/Decimal/int → fen, one rounding rule
(half up to the fen), exact mode for typed amounts, and a clear error."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ecbao import money


@pytest.mark.parametrize(
    ("value", "fen"),
    [
        ("12.50", 1250),
        (" 12 ", 1200),
        ("1,234.50", 123450),
        ("¥1,234,567.89", 123456789),
        ("￥ 8", 800),
        (".5", 50),
        ("0.01", 1),
        ("1.005", 101),  # half up (ROUND_HALF_EVEN would give 100)
        ("1.015", 102),
        ("1.004", 100),
        ("2.675", 268),  # as text, not through a float
        (12, 1200),
        (Decimal("3.07"), 307),
        (19.9, 1990),  # a float is read through its shortest repr
        (0.1, 10),
        ("9999999999.99", 999_999_999_999),
    ],
)
def test_yuan_become_fen_rounding_half_up(value, fen):
    assert money.to_fen(value) == fen
    assert isinstance(money.to_fen(value), int)


def test_negative_amounts_only_when_allowed():
    with pytest.raises(money.MoneyError) as exc:
        money.to_fen("-0.01")
    assert exc.value.code == "negative"
    assert money.to_fen("-0.01", negative=True) == -1
    assert money.to_fen("-1.005", negative=True) == -101  # half up: away from zero
    assert money.to_fen("¥-5", negative=True) == -500


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", "blank"),
        ("   ", "blank"),
        (None, "blank"),
        ("abc", "invalid"),
        ("12,34", "invalid"),  # a separator that does not split thousands
        ("1e3", "invalid"),
        ("NaN", "invalid"),
        ("Infinity", "invalid"),
        (".", "invalid"),
        ("1.2.3", "invalid"),
        (True, "invalid"),
        (float("nan"), "invalid"),
        ("10000000000.01", "too_large"),
        ("99999999999999999999999999999999", "too_large"),
        (Decimal("1e400"), "too_large"),
        (1e300, "too_large"),
    ],
)
def test_what_is_not_an_amount_is_a_money_error(value, code):
    with pytest.raises(money.MoneyError) as exc:
        money.to_fen(value)
    assert exc.value.code == code
    assert isinstance(exc.value, ValueError) and str(exc.value)


def test_exact_refuses_what_it_would_round_and_blank_can_have_a_default():
    assert money.to_fen("1.50", exact=True) == 150
    with pytest.raises(money.MoneyError) as exc:
        money.to_fen("1.005", exact=True)
    assert exc.value.code == "precision"
    assert money.to_fen("", blank=0) == 0
    assert money.to_fen(None, blank=None) is None
    with pytest.raises(money.MoneyError):
        money.to_fen("100.01", max_fen=10_000)


def test_messages_are_translated(settings):
    from django.utils import translation

    with translation.override("zh-hans"):
        assert "两位小数" in str(money.MoneyError("precision"))


def test_fen_back_to_yuan():
    assert money.to_yuan(123456) == Decimal("1234.56")
    assert money.format_yuan(123456) == "1234.56"
    assert money.format_yuan(-5) == "-0.05"
    assert money.format_yuan(123456789, symbol=True, grouping=True) == "¥1,234,567.89"
    assert money.to_fen(money.format_yuan(98765)) == 98765


def test_kuaishou_bill_amounts_use_the_same_rule():
    from channels.connectors.kuaishou.api import fen

    assert fen("12.345") == 1235  # yuan text, half up (was half even through Decimal's default)
    assert fen("1.005") == 101
    assert fen("-3.50") == -350  # deductions
    assert fen("1234") == 1234  # without a point: already fen
    assert fen(1234) == 1234
    assert (fen(""), fen(None), fen("abc")) == (0, 0, 0)
