"""The auto-approve rule for small refunds (one ``AutoApprovePolicy`` per tenant).

A new after-sale in 待处理 is approved by the rule (``auto_approve``, called by ingestion) when
every condition holds: the rule is on; the refund is at most ``max_fen``; the goods had not
shipped (when ``unshipped_only``); it is a refund without return (仅退款); its shop is one of
the rule's shops (none named = every shop); it is still waiting for the merchant. Like the
routing rules (``suppliers.routing``) the rule explains itself in one zh-Hans sentence naming
every condition, kept on the after-sale (``auto_note``) whether it acted or not.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.db import transaction

from aftersales.models import AfterSale, AfterSaleAction, AutoApprovePolicy

logger = logging.getLogger(__name__)

T = AfterSale.Type
NOTE_MAX = 300
MAX_LIMIT_FEN = 10_000_00  # 1 万元: a larger "small refund" is a typo
REFUND_ONLY = (T.REFUND_UNSHIPPED, T.REFUND_SHIPPED)
TYPE_NAMES = {
    T.REFUND_UNSHIPPED: "未发货仅退款",
    T.REFUND_SHIPPED: "已发货仅退款",
    T.RETURN_REFUND: "退货退款",
    T.EXCHANGE: "换货",
    T.RESHIP: "补寄",
    T.OTHER: "其他",
}


def yuan(fen: int) -> str:
    return f"{fen / 100:.2f} 元"


def get_policy() -> AutoApprovePolicy:
    """The tenant's rule (made, switched off, on first use)."""
    policy = AutoApprovePolicy.objects.order_by("id").first()
    if policy is None:
        policy = AutoApprovePolicy.objects.create()
    return policy


def set_policy(
    *, enabled: bool, max_fen: int, unshipped_only: bool = True, store_ids=(), actor=None
) -> AutoApprovePolicy:
    """Change the rule; ValidationError (zh-Hans) on a bad amount or an unknown shop."""
    from channels.models import Store

    errors = {}
    try:
        max_fen = int(max_fen)
    except (TypeError, ValueError):
        errors["max_fen"] = "金额上限必须是整数（分）。"
    else:
        if max_fen < 0:
            errors["max_fen"] = "金额上限不能为负数。"
        elif max_fen > MAX_LIMIT_FEN:
            errors["max_fen"] = f"金额上限不能超过 {yuan(MAX_LIMIT_FEN)}。"
    try:
        ids = sorted({int(i) for i in store_ids or ()})
    except (TypeError, ValueError):
        errors["store_ids"] = "店铺编号无效。"
        ids = []
    if ids:
        known = set(Store.objects.filter(pk__in=ids).values_list("pk", flat=True))
        unknown = [i for i in ids if i not in known]
        if unknown:
            errors["store_ids"] = "未知的店铺：" + "、".join(map(str, unknown))
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        policy = get_policy()
        policy = AutoApprovePolicy.objects.select_for_update().get(pk=policy.pk)
        policy.enabled = bool(enabled)
        policy.max_fen = max_fen
        policy.unshipped_only = bool(unshipped_only)
        policy.store_ids = ids
        policy.updated_by = actor
        policy.save()
    return policy


def _shipped(after_sale: AfterSale) -> bool:
    return after_sale.shipped_before or after_sale.type != T.REFUND_UNSHIPPED


def explain(after_sale: AfterSale, policy: AutoApprovePolicy | None = None) -> tuple[bool, str]:
    """(would the rule approve it?, why — every condition, ✓ held / ✗ not)."""
    policy = policy or get_policy()
    checks: list[tuple[bool, str]] = []
    checks.append((policy.enabled, "规则已开启" if policy.enabled else "规则未开启"))
    amount_ok = after_sale.refund_fen <= policy.max_fen
    checks.append(
        (
            amount_ok,
            f"金额 {yuan(after_sale.refund_fen)} {'≤' if amount_ok else '>'} 上限 {yuan(policy.max_fen)}",
        )
    )
    if policy.unshipped_only:
        shipped = _shipped(after_sale)
        checks.append((not shipped, "已发货（规则只管未发货）" if shipped else "未发货"))
    type_ok = after_sale.type in REFUND_ONLY
    type_name = TYPE_NAMES.get(after_sale.type, after_sale.type)
    checks.append((type_ok, f"类型 {type_name}" + ("" if type_ok else "（规则只管仅退款）")))
    if policy.store_ids:
        store_ok = after_sale.store_id in set(policy.store_ids)
        name = getattr(after_sale.store, "name", "") or str(after_sale.store_id)
        checks.append((store_ok, f"店铺 {name} {'在' if store_ok else '不在'}规则范围内"))
    else:
        checks.append((True, "店铺不限"))
    queue_ok = after_sale.queue == AfterSale.Queue.PENDING
    checks.append(
        (queue_ok, "待处理" if queue_ok else f"当前为「{after_sale.get_queue_display()}」，不是待处理")
    )
    ok = all(held for held, _ in checks)
    head = "自动同意：" if ok else "不自动同意："
    # the conditions that failed first, so a clipped note still says why
    ordered = [c for c in checks if not c[0]] + [c for c in checks if c[0]]
    text = head + "；".join(("✓ " if held else "✗ ") + words for held, words in ordered)
    return ok, text if len(text) <= NOTE_MAX else text[: NOTE_MAX - 1] + "…"


def auto_approve(after_sale: AfterSale) -> AfterSaleAction | None:
    """Approve ``after_sale`` by the rule when it applies (source "rule"); the explanation is
    written to ``auto_note`` either way. Safe to call twice (the action's key)."""
    from aftersales import actions

    ok, note = explain(after_sale)
    AfterSale.objects.filter(pk=after_sale.pk).update(auto_note=note)
    after_sale.auto_note = note
    if not ok:
        return None
    try:
        return actions.approve(after_sale, source="rule")
    except ValidationError as exc:  # the queue moved meanwhile
        logger.info("auto-approve of after-sale %s refused: %s", after_sale.pk, exc)
        return None
