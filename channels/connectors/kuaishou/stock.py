"""Kuaishou shop (快手电商) connector — listings, stock push and publishing (商品铺货)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from channels.connectors.base import (
    as_dict,
    as_id,
    as_int,
    as_list,
    publish_dimensions,
)
from channels.connectors.kuaishou.api import ITEM_PAGE_SIZE
from channels.errors import PlatformRejected
from channels.types import (
    Listing,
    PublishedProduct,
    PublishSku,
)


class StockMixin:
    """KuaishouConnector: listings, stock push and publishing (商品铺货)."""

    # ------------------------------------------------------------------ stock and listings

    def iter_listings(self) -> Iterator[Listing]:
        """Every SKU of the shop's items, from ``open.item.list.get`` (which carries the SKUs)."""
        page = 1
        while True:
            data = as_dict(
                self._api("open.item.list.get", {"pageNumber": page, "pageSize": ITEM_PAGE_SIZE}).get("data")
            )
            items = as_list(data.get("items"))
            for item in items:
                item = as_dict(item)
                for sku in as_list(item.get("skuList")):
                    sku = as_dict(sku)
                    yield Listing(
                        platform_product_id=as_id(item.get("kwaiItemId")),
                        platform_sku_id=as_id(sku.get("kwaiSkuId")),
                        merchant_code=str(sku.get("skuNick") or ""),
                        title=str(item.get("title") or ""),
                        spec=str(sku.get("specification") or ""),
                        stock=as_int(sku.get("skuStock")),
                        price_fen=as_int(sku.get("skuSalePrice")),
                    )
            if not items or page >= as_int(data.get("totalPage"), 1):
                return
            page += 1

    def current_stock(self, listing: Listing) -> int:
        """The platform's stock of one SKU now (``open.item.sku.list.get``)."""
        data = as_dict(
            self._api("open.item.sku.list.get", {"kwaiItemId": int(listing.platform_product_id)}).get("data")
        )
        for sku in as_list(data.get("skuList")):
            if as_id(as_dict(sku).get("kwaiSkuId")) == listing.platform_sku_id:
                return as_int(as_dict(sku).get("skuStock"))
        raise PlatformRejected(
            f"sku {listing.platform_sku_id} not found on item {listing.platform_product_id}", code="sku"
        )

    def set_stock(
        self, *, listing: Listing, quantity: int, current: int | None, idempotency_key: str
    ) -> None:
        """Bring the SKU to ``quantity`` with ``open.item.sku.stock.update``, which only adds
        (``changeType`` 1) or removes (2) a delta: the delta is ``quantity - current``
        (``current`` read first when unknown); nothing is sent when they are equal.

        The API takes no idempotency key (``idempotency_key`` is unused), so a delta that
        timed out is **not** re-sent: the caller re-reads the stock and sets again."""
        if quantity < 0:
            raise ValueError("stock cannot be negative")
        if current is None:
            current = self.current_stock(listing)
        delta = quantity - current
        if delta == 0:
            return
        params = {"kwaiItemId": int(listing.platform_product_id), "skuId": int(listing.platform_sku_id),
                  "skuChangeStock": abs(delta), "changeType": 1 if delta > 0 else 2}  # fmt: skip
        self._api("open.item.sku.stock.update", params, write=True)

    # ------------------------------------------------------------------ publishing (商品铺货)

    def publish_product(
        self, *, title: str, skus: list[PublishSku], images: list[str], category: str, request_id: str
    ) -> PublishedProduct:
        """``open.item.new`` (POST form): ``title``, ``categoryId``, ``imageUrls``, ``details``,
        ``skuList[]{skuNick (merchant code), skuSalePrice (fen), skuStock, skuProps[]{propName,
        propValueName, isMainProp}}``. No idempotency key (``request_id`` unused): never re-sent
        after a lost answer. The answer carries ``itemId``; the SKU ids are read back with
        ``open.item.sku.list.get`` and matched by ``skuNick``."""
        if not skus or not images:
            raise ValueError("a product needs SKUs and images")
        names, rows = publish_dimensions(skus, max_dimensions=3)
        params: dict[str, Any] = {
            "title": title,
            "imageUrls": list(images),
            "details": title,
            "skuList": [
                {
                    "skuNick": sku.merchant_code,
                    "skuSalePrice": sku.price_fen,
                    "skuStock": sku.stock,
                    "skuProps": [
                        {"propName": n, "propValueName": v, "isMainProp": i == 0}
                        for i, (n, v) in enumerate(zip(names, row, strict=True))
                    ],
                }
                for sku, row in zip(skus, rows, strict=True)
            ],
        }
        if category.isdigit():
            params["categoryId"] = int(category)
        data = as_dict(self._api("open.item.new", params, write=True).get("data"))
        item_id = as_id(data.get("itemId"))
        if not item_id:
            raise PlatformRejected("open.item.new returned no itemId", code="itemId")
        listed = as_dict(self._api("open.item.sku.list.get", {"kwaiItemId": int(item_id)}).get("data"))
        listings = tuple(
            Listing(
                platform_product_id=item_id,
                platform_sku_id=as_id(as_dict(sku).get("kwaiSkuId")),
                merchant_code=str(as_dict(sku).get("skuNick") or ""),
                title=title,
                spec=str(as_dict(sku).get("specification") or ""),
                stock=as_int(as_dict(sku).get("skuStock")),
                price_fen=as_int(as_dict(sku).get("skuSalePrice")),
            )
            for sku in as_list(listed.get("skuList"))
        )
        return PublishedProduct(platform_product_id=item_id, skus=listings)
