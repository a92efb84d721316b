import pytest

from inventory.models import StockRule
from inventory.sync import publish_quantity


@pytest.mark.parametrize(
    ("available", "rule", "expected"),
    [
        (10, None, 10),
        (-3, None, 0),
        (10, StockRule(percent=50), 5),
        (9, StockRule(percent=50), 4),  # floor
        (10, StockRule(percent=100, safety=3), 7),
        (2, StockRule(percent=100, safety=3), 0),  # clamped at 0
        (100, StockRule(percent=100, cap=30), 30),
        (0, StockRule(percent=100, floor=1), 1),
        (10, StockRule(percent=80, add=2, safety=1), 9),
    ],
)
def test_publish_quantity_follows_the_rule(available, rule, expected):
    assert publish_quantity(available=available, rule=rule) == expected
