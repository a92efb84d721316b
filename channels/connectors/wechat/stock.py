"""WeChat Channels shop (微信小店) connector — listings, stock push and publishing (商品铺货)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.connectors.base import (
    publish_dimensions,
)
from channels.connectors.wechat.api import PRODUCT_PAGE_SIZE, _str_id
from channels.errors import (
    PlatformRejected,
)
from channels.types import (
    Listing,
    PublishedProduct,
    PublishSku,
)


class StockMixin:
    """WechatConnector: listings, stock push and publishing (商品铺货)."""

    # --- stock and listings --------------------------------------------------------------------------
    def _product_ids(self) -> Iterator[list[str]]:
        next_key, seen = "", 0
        while True:
            body: dict[str, Any] = {"page_size": PRODUCT_PAGE_SIZE}
            if next_key:
                body["next_key"] = next_key
            page = self.api("/channels/ec/product/list/get", body)
            ids = [_str_id(x) for x in page.get("product_ids") or []]
            if not ids:
                return
            yield ids
            seen += len(ids)
            next_key = str(page.get("next_key") or "")
            if not next_key or ("total_num" in page and seen >= int(page["total_num"])):
                return

    def _product(self, product_id: str) -> dict[str, Any]:
        return (
            self.api("/channels/ec/product/get", {"product_id": product_id, "data_type": 1}).get("product")
            or {}
        )

    def iter_listings(self) -> Iterator[Listing]:
        """Every SKU of every product (ids via ``/product/list/get``, then ``/product/get``)."""
        pool = (
            ThreadPoolExecutor(self.detail_workers, thread_name_prefix="wechat-product")
            if self.detail_workers > 1
            else None
        )
        try:
            for ids in self._product_ids():
                for product in self._fetch_all(self._product, ids, pool):
                    for sku in product.get("skus") or []:
                        yield Listing(
                            platform_product_id=_str_id(product.get("product_id")),
                            platform_sku_id=_str_id(sku.get("sku_id")),
                            merchant_code=str(sku.get("sku_code") or ""),
                            title=str(product.get("title") or ""),
                            spec=";".join(
                                f"{a.get('attr_key', '')}:{a.get('attr_value', '')}"
                                for a in sku.get("sku_attrs") or []
                            ),
                            stock=int(sku.get("stock_num") or 0),
                            price_fen=int(sku.get("sale_price") or 0),
                        )
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def get_stock(self, listing: Listing) -> int:
        """The platform's current normal stock of a SKU."""
        reply = self.api(
            "/channels/ec/product/stock/get",
            {"product_id": listing.platform_product_id, "sku_id": listing.platform_sku_id},
        )
        return int((reply.get("data") or {}).get("normal_stock_num") or 0)

    def set_stock(
        self, *, listing: Listing, quantity: int, current: int | None, idempotency_key: str
    ) -> None:
        """Make the SKU's stock ``quantity``. With ``current`` known, send the difference
        (diff_type 1/2, which WeChat recommends because diff_type 3 misbehaves under concurrency);
        such a delta is not re-sent after a timeout. Without ``current``, set it absolutely
        (diff_type 3, safe to retry). WeChat has no idempotency key."""
        if quantity < 0:
            raise ValueError("stock cannot be negative")
        ids = {"product_id": listing.platform_product_id, "sku_id": listing.platform_sku_id}
        if current is None:
            self.api(
                "/channels/ec/product/stock/update", {**ids, "diff_type": 3, "num": quantity}, idempotent=True
            )
            return
        delta = quantity - current
        if delta == 0:
            return
        body = {**ids, "diff_type": 1 if delta > 0 else 2, "num": abs(delta)}
        self.api("/channels/ec/product/stock/update", body, idempotent=False)

    # --- publishing (商品铺货) -----------------------------------------------------------------------
    def publish_product(
        self, *, title: str, skus: list[PublishSku], images: list[str], category: str, request_id: str
    ) -> PublishedProduct:
        """``/channels/ec/product/add``: ``title``, ``head_imgs``, ``desc_info``, ``cats_v2``,
        ``skus[]{sku_code (merchant code), sale_price (fen), stock_num, sku_attrs[]}``,
        ``listing`` 1 (list right away). The API has no idempotency key (``request_id``
        unused): never re-sent after a lost answer. The answer carries only ``product_id``;
        the SKU ids are read back with ``/channels/ec/product/get`` and matched by ``sku_code``."""
        if not skus or not images:
            raise ValueError("a product needs SKUs and images")
        names, rows = publish_dimensions(skus, max_dimensions=3)
        body: dict[str, Any] = {
            "title": title,
            "head_imgs": list(images),
            "desc_info": {"imgs": list(images), "desc": title},
            "skus": [
                {
                    "sku_code": sku.merchant_code,
                    "sale_price": sku.price_fen,
                    "stock_num": sku.stock,
                    "thumb_img": images[0],
                    "sku_attrs": [{"attr_key": n, "attr_value": v} for n, v in zip(names, row, strict=True)],
                }
                for sku, row in zip(skus, rows, strict=True)
            ],
            "listing": 1,
        }
        if category:
            body["cats_v2"] = [{"cat_id": category}]
        reply = self.api("/channels/ec/product/add", body, idempotent=False)
        product_id = _str_id((reply.get("data") or {}).get("product_id"))
        if not product_id:
            raise PlatformRejected("product/add returned no product_id", code="product_id")
        listings = []
        for sku in self._product(product_id).get("skus") or []:
            listings.append(
                Listing(
                    platform_product_id=product_id,
                    platform_sku_id=_str_id(sku.get("sku_id")),
                    merchant_code=str(sku.get("sku_code") or ""),
                    title=title,
                    spec=";".join(
                        f"{a.get('attr_key', '')}:{a.get('attr_value', '')}"
                        for a in sku.get("sku_attrs") or []
                    ),
                    stock=int(sku.get("stock_num") or 0),
                    price_fen=int(sku.get("sale_price") or 0),
                )
            )
        return PublishedProduct(platform_product_id=product_id, skus=tuple(listings))
