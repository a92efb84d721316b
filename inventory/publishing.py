"""Product publishing (商品铺货): create a merchant's goods, with its SKUs, as a product on
selected shops, and record the listings so stock sync takes over at once.

- Prices: there is no sale price on ``Sku``; the caller gives one per SKU (``prices``, fen,
  by SKU id) and/or a markup on cost (``markup_percent``: price = cost × percent / 100,
  rounded to the fen) for SKUs without an explicit price. Every SKU must end up > 0, else the
  whole call is refused before any shop is touched (``PublishError``).
- Each SKU is sent with its merchant code as the platform's SKU code and with the stock its
  store's stock rule computes now; the listings are recorded matched, ``push_state`` pending,
  and a stock push is enqueued after commit, so the published number follows the rule.
- Shops are independent: a refusal, an outage or an expired authorisation is reported for
  that shop and the others go on. A shop that already has a listing of any of the goods' SKUs
  is refused (publishing twice would create a duplicate product).
- Creating a product is not idempotent on any of the three platforms: a create whose answer
  was lost is never re-sent (the connectors call with ``idempotent=False``); the result says
  the outcome is unknown, so the merchant checks the shop (refresh its listings) first.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils.translation import gettext as _

from channels import services as channel_services
from channels.errors import AuthExpired, ChannelError, PlatformRejected, TemporarilyUnavailable
from channels.models import Store
from channels.sync import advisory_lock
from channels.types import PublishSku
from inventory import sync
from inventory.models import Goods, Listing, Sku

logger = logging.getLogger(__name__)

DEFAULT_MARKUP_PERCENT = 200  # the publish page prefills price = cost × 2


class PublishError(ValueError):
    """The request itself is unusable (no SKUs, no images, a price missing)."""


@dataclass
class PublishResult:
    store_id: int
    store_name: str
    platform: str
    ok: bool = False
    platform_product_id: str = ""
    listing_ids: list[int] = field(default_factory=list)
    error: str = ""
    #: the platform may have created the product (its answer was lost): check before retrying
    outcome_unknown: bool = False
    #: merchant codes the platform answered without (not recorded as listings)
    missing_codes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "store_id": self.store_id,
            "store_name": self.store_name,
            "platform": self.platform,
            "ok": self.ok,
            "platform_product_id": self.platform_product_id,
            "listing_ids": self.listing_ids,
            "error": self.error,
            "outcome_unknown": self.outcome_unknown,
            "missing_codes": self.missing_codes,
        }


def sku_prices(
    skus: Iterable[Sku], *, prices: dict[int, int] | None = None, markup_percent: int | None = None
) -> dict[int, int]:
    """Price (fen) per SKU id: the explicit price, else cost × markup; PublishError if any
    SKU ends up without a positive price."""
    prices = prices or {}
    result, missing = {}, []
    for sku in skus:
        price = prices.get(sku.pk)
        if price is None and markup_percent is not None:
            price = (sku.cost_fen * markup_percent + 50) // 100
        if price is None or price <= 0:
            missing.append(sku.merchant_code)
        else:
            result[sku.pk] = int(price)
    if missing:
        raise PublishError(_("Give every SKU a price above zero: %(codes)s") % {"codes": ", ".join(missing)})
    return result


def goods_images(goods: Goods, skus: Iterable[Sku]) -> list[str]:
    images = [str(x) for x in goods.images or [] if str(x).strip()]
    images += [s.image for s in skus if s.image and s.image not in images]
    return images


def publishable_skus(goods: Goods) -> list[Sku]:
    return list(goods.skus.filter(is_active=True).order_by("merchant_code"))


def published_store_ids(goods: Goods) -> set[int]:
    """Stores that already have a listing of one of the goods' SKUs."""
    return set(Listing.objects.filter(sku__goods=goods).values_list("store_id", flat=True))


def _initial_stock(store: Store, sku: Sku) -> int:
    """What the store's stock rule publishes for ``sku`` now (the push that follows sets it again)."""
    return sync.listing_quantity(Listing(store=store, sku=sku))


def publish_goods(
    *,
    goods: Goods,
    stores: Iterable[Store],
    user=None,
    prices: dict[int, int] | None = None,
    markup_percent: int | None = None,
    title: str = "",
    images: list[str] | None = None,
    categories: dict[int, str] | None = None,
    connector_factory: Callable[[Store], object] | None = None,
) -> list[PublishResult]:
    """Publish ``goods`` to each of ``stores``; one result per store, in order.

    ``categories``: the platform's leaf category id per store id (optional). ``connector_factory``
    (tests): ``store → connector``; by default ``channels.services.connector_for``."""
    skus = publishable_skus(goods)
    if not skus:
        raise PublishError(_("This goods has no active SKU to publish."))
    price_of = sku_prices(skus, prices=prices, markup_percent=markup_percent)
    images = [x for x in (images if images is not None else goods_images(goods, skus)) if x]
    if not images:
        raise PublishError(_("Add at least one image of the goods before publishing."))
    title = (title or goods.name).strip()
    factory = connector_factory or channel_services.connector_for
    results = []
    for store in stores:
        result = PublishResult(store_id=store.pk, store_name=store.name, platform=store.platform)
        try:
            _publish_to_store(
                result,
                store=store,
                goods=goods,
                skus=skus,
                price_of=price_of,
                title=title,
                images=images,
                category=(categories or {}).get(store.pk, ""),
                factory=factory,
            )
        except Exception as exc:  # one shop's surprise must not stop the others
            logger.exception("publishing goods %s to store %s failed", goods.pk, store.pk)
            result.error = f"{type(exc).__name__}: {exc}"
        logger.info(
            "publish goods=%s store=%s user=%s ok=%s product=%s error=%s",
            goods.pk, store.pk, getattr(user, "pk", None), result.ok, result.platform_product_id, result.error,
        )  # fmt: skip
        results.append(result)
    return results


def _publish_to_store(
    result: PublishResult,
    *,
    store: Store,
    goods: Goods,
    skus: list[Sku],
    price_of: dict[int, int],
    title: str,
    images: list[str],
    category: str,
    factory: Callable[[Store], object],
) -> None:
    if store.status != Store.Status.ACTIVE:
        result.error = _("The shop is not active (%(status)s); connect it again first.") % {
            "status": store.get_status_display()
        }
        return
    with advisory_lock(f"publish:{store.pk}") as acquired:
        if not acquired:
            result.error = _("Another publish to this shop is running; try again in a moment.")
            return
        listed = list(
            Listing.objects.filter(store=store, sku__in=skus).values_list("merchant_code", flat=True)[:5]
        )
        if listed:
            result.error = _(
                "This goods is already listed on this shop (%(codes)s); it was not published again."
            ) % {"codes": ", ".join(listed)}
            return
        publish_skus = [
            PublishSku(
                merchant_code=sku.merchant_code,
                spec=sku.spec,
                price_fen=price_of[sku.pk],
                stock=_initial_stock(store, sku),
            )
            for sku in skus
        ]
        connector = factory(store)
        request_id = f"publish-{connection.schema_name}-{goods.pk}-{store.pk}-{uuid.uuid4().hex[:12]}"
        try:
            product = connector.publish_product(
                title=title, skus=publish_skus, images=images, category=category, request_id=request_id
            )
        except TemporarilyUnavailable as exc:
            result.outcome_unknown = True
            result.error = _(
                "The platform did not answer (%(error)s). The product may have been created: refresh "
                "this shop's listings and check before publishing again."
            ) % {"error": exc}
            return
        except AuthExpired as exc:
            result.error = _("The shop's authorisation has expired; connect it again. (%(error)s)") % {
                "error": exc
            }
            return
        except PlatformRejected as exc:
            result.error = _("The platform refused the product: %(error)s") % {"error": exc}
            return
        except ChannelError as exc:
            result.error = _("The platform call failed: %(error)s") % {"error": exc}
            return
        result.platform_product_id = product.platform_product_id
        by_code = {sku.merchant_code: sku for sku in skus}
        with transaction.atomic():
            for item in product.skus:
                sku = by_code.get(item.merchant_code)
                listing, created = Listing.objects.get_or_create(
                    store=store,
                    platform_product_id=item.platform_product_id,
                    platform_sku_id=item.platform_sku_id,
                    defaults={"merchant_code": item.merchant_code},
                )
                listing.merchant_code = item.merchant_code
                listing.title = item.title[:300]
                listing.spec = item.spec[:200]
                listing.sku = sku
                listing.match = Listing.Match.MATCHED if sku else Listing.Match.UNMATCHED
                listing.platform_stock = item.stock
                listing.push_state = Listing.PushState.PENDING
                listing.push_error = ""
                listing.save()
                result.listing_ids.append(listing.pk)
                if sku is not None:
                    transaction.on_commit(lambda pk=listing.pk: sync.enqueue_listing_push(pk))
        returned = {item.merchant_code for item in product.skus}
        result.missing_codes = [sku.merchant_code for sku in skus if sku.merchant_code not in returned]
        result.ok = True
