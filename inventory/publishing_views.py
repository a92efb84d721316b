"""The publish page (商品铺货): choose shops, check each SKU's price, publish, see per-shop results."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext as _

from channels.models import Store
from ecbao import money
from inventory import publishing
from inventory.models import Goods
from tenants.accounts.permissions import capability_required


def _fen(text: str) -> int | None:
    """A price typed in yuan ("59.9") → fen; None when blank, not a number, or finer than a fen."""
    try:
        return money.to_fen(text, exact=True, blank=None)
    except money.MoneyError:
        return None


@capability_required("inventory.manage")
def publish(request, goods_id: int):
    goods = get_object_or_404(Goods, pk=goods_id)
    skus = publishing.publishable_skus(goods)
    stores = list(Store.objects.filter(status=Store.Status.ACTIVE).order_by("platform", "name"))
    published = publishing.published_store_ids(goods)
    results, error = None, ""
    data = request.POST if request.method == "POST" else None
    rows = []
    prices: dict[int, int] = {}
    for sku in skus:
        default = (sku.cost_fen * publishing.DEFAULT_MARKUP_PERCENT + 50) // 100
        text = (
            data.get(f"price-{sku.pk}", "")
            if data is not None
            else (money.format_yuan(default) if default else "")
        )
        fen = _fen(text)
        if fen is not None:
            prices[sku.pk] = fen
        rows.append({"sku": sku, "price": text, "invalid": data is not None and (fen is None or fen <= 0)})
    chosen = {int(x) for x in (data.getlist("stores") if data is not None else []) if str(x).isdigit()}
    title = data.get("title", "").strip() if data is not None else goods.name
    images_text = (
        data.get("images", "") if data is not None else "\n".join(str(x) for x in goods.images or [])
    )
    shop_rows = [
        {
            "store": s,
            "published": s.pk in published,
            "checked": s.pk in chosen,
            "category": data.get(f"category-{s.pk}", "").strip() if data is not None else "",
        }
        for s in stores
    ]
    status = 200
    if data is not None:
        targets = [s for s in stores if s.pk in chosen]
        if not targets:
            error, status = _("Choose at least one shop."), 400
        else:
            try:
                results = publishing.publish_goods(
                    goods=goods,
                    stores=targets,
                    user=request.user,
                    prices=prices,
                    title=title,
                    images=[line.strip() for line in images_text.splitlines() if line.strip()],
                    categories={row["store"].pk: row["category"] for row in shop_rows if row["category"]},
                )
            except publishing.PublishError as exc:
                error, status = str(exc), 400
            else:
                published = publishing.published_store_ids(goods)
                for row in shop_rows:
                    row["published"] = row["store"].pk in published
    return render(
        request,
        "inventory/publish.html",
        {
            "goods": goods,
            "rows": rows,
            "shop_rows": shop_rows,
            "title": title,
            "images_text": images_text,
            "results": results,
            "error": error,
        },
        status=status,
    )
