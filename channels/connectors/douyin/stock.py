"""Douyin shop (抖店) connector — listings, stock push and publishing (商品铺货)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from channels.connectors.base import (
    as_dict,
    as_id,
    as_int,
    publish_dimensions,
)
from channels.connectors.douyin.api import MAX_PAGING_DEPTH, MAX_REWALKS, PAGE_SIZE, _num_id, logger
from channels.errors import PlatformRejected
from channels.types import (
    Listing,
    PublishedProduct,
    PublishSku,
)


class StockMixin:
    """DouyinConnector: listings, stock push and publishing (商品铺货)."""

    # ------------------------------------------------------------------ listings and stock

    def iter_listings(self) -> Iterator[Listing]:
        """Every SKU of every product not deleted: ``/product/listV2`` (page from 1), then
        ``/sku/list`` per product. The product walk is repeated when its ``total`` changed
        underneath it; products already listed are not listed twice."""
        done: set[str] = set()
        for _ in range(MAX_REWALKS):
            first_total: int | None = None
            stable = True
            page = 1
            while True:
                if page * PAGE_SIZE > MAX_PAGING_DEPTH:
                    logger.warning(
                        "shop %s has more than %s products; the rest is not listed",
                        self.session.platform_shop_id,
                        MAX_PAGING_DEPTH,
                    )
                    return
                data = as_dict(
                    self._api("/product/listV2", {"page": page, "size": PAGE_SIZE}, idempotent=True)
                )
                total = as_int(data.get("total"))
                first_total = total if first_total is None else first_total
                stable = stable and total == first_total
                products = [p for p in data.get("data") or [] if isinstance(p, dict)]
                for product in products:
                    product_id = as_id(product.get("product_id"))
                    if (
                        not product_id or product_id in done or as_int(product.get("status")) == 2
                    ):  # 2 = deleted
                        continue
                    done.add(product_id)
                    yield from self._listings_of(product_id, str(product.get("name") or ""))
                if not products or page * PAGE_SIZE >= total:
                    break
                page += 1
            if stable:
                return

    def _listings_of(self, product_id: str, title: str) -> Iterator[Listing]:
        skus = self._api("/sku/list", {"product_id": _num_id(product_id)}, idempotent=True)
        for sku in skus or []:
            if not isinstance(sku, dict):
                continue
            values = [str(sku.get(f"spec_detail_name{i}") or "") for i in (1, 2, 3)]
            yield Listing(
                platform_product_id=product_id,
                platform_sku_id=as_id(sku.get("id")),
                merchant_code=str(sku.get("code") or ""),
                title=title,
                spec=";".join(v for v in values if v),
                stock=as_int(sku.get("stock_num")),
                price_fen=as_int(sku.get("price")),
            )

    def set_stock(
        self, *, listing: Listing, quantity: int, current: int | None, idempotency_key: str
    ) -> None:
        """``/sku/syncStock`` absolute set (``incremental=false``): idempotent, so retried.
        ``current`` and ``idempotency_key`` are not needed by an absolute set."""
        if quantity < 0:
            raise ValueError("stock cannot be negative")
        params = {
            "sku_id": _num_id(listing.platform_sku_id),
            "product_id": _num_id(listing.platform_product_id),
            "stock_num": quantity,
            "incremental": False,
        }
        self._api("/sku/syncStock", params, idempotent=True)

    # ------------------------------------------------------------------ publishing (商品铺货)

    def publish_product(
        self, *, title: str, skus: list[PublishSku], images: list[str], category: str, request_id: str
    ) -> PublishedProduct:
        """``/product/addV2``: ``specs`` ("颜色|白色,黑色^尺码|M,L"), ``spec_prices`` (a JSON
        string: per SKU ``code`` = merchant code, ``price`` fen, ``stock_num``,
        ``spec_detail_name1..3``), ``pic`` ("url|url"), ``commit`` true (submit for sale).
        addV2 has no idempotency key (``request_id`` unused), so it is never re-sent after a
        lost answer. The answer's ``sku[]`` maps SKU ids to codes; ``/sku/list`` fills any gap."""
        if not skus or not images:
            raise ValueError("a product needs SKUs and images")
        names, rows = publish_dimensions(skus, max_dimensions=3)
        specs = "^".join(
            f"{name}|{','.join(dict.fromkeys(row[i] for row in rows))}" for i, name in enumerate(names)
        )
        spec_prices = [
            {"code": sku.merchant_code, "price": sku.price_fen, "stock_num": sku.stock,
             **{f"spec_detail_name{i + 1}": value for i, value in enumerate(row)}}
            for sku, row in zip(skus, rows, strict=True)
        ]  # fmt: skip
        params: dict[str, Any] = {
            "product_type": 0,
            "name": title,
            "pic": "|".join(images),
            "description": "".join(f'<img src="{url}">' for url in images),
            "specs": specs,
            "spec_prices": json.dumps(spec_prices, ensure_ascii=False, separators=(",", ":")),
            "commit": True,
        }
        if category.isdigit():
            params["category_leaf_id"] = int(category)
        data = as_dict(self._api("/product/addV2", params, idempotent=False))
        product_id = as_id(data.get("product_id"))
        if not product_id:
            raise PlatformRejected("addV2 returned no product_id", code="product_id")
        ids = {
            str(s.get("code") or ""): as_id(s.get("sku_id"))
            for s in data.get("sku") or []
            if isinstance(s, dict)
        }
        if any(sku.merchant_code not in ids for sku in skus):
            for listing in self._listings_of(product_id, title):
                ids.setdefault(listing.merchant_code, listing.platform_sku_id)
        return PublishedProduct(
            platform_product_id=product_id,
            skus=tuple(
                Listing(
                    platform_product_id=product_id,
                    platform_sku_id=ids[sku.merchant_code],
                    merchant_code=sku.merchant_code,
                    title=title,
                    spec=";".join(row),
                    stock=sku.stock,
                    price_fen=sku.price_fen,
                )
                for sku, row in zip(skus, rows, strict=True)
                if ids.get(sku.merchant_code)
            ),
        )
