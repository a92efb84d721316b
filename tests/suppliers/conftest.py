from tests.orders.conftest import skus, store  # noqa: F401  (the orders fixtures: a shop, SKUs with stock)
