"""Review (审单) rules: which paid orders are held, approved automatically or left to review."""

from __future__ import annotations

from orders.models import Order, ReviewRule

K = ReviewRule.Kind
DEFAULT_ENABLED = {
    K.AUTO_APPROVE,
    K.AUTO_MERGE,
    K.BUYER_REMARK,
    K.SELLER_REMARK,
    K.ADDRESS_CHANGED,
    K.PLATFORM_RISK,
    K.STOCK_SHORT,
    K.UNMATCHED,
}


def active_rules() -> dict[str, ReviewRule]:
    """The tenant's rules; kinds never configured use the defaults (amount rule off)."""
    rules = {r.kind: r for r in ReviewRule.objects.all()}
    for kind in K.values:
        rules.setdefault(kind, ReviewRule(kind=kind, enabled=kind in DEFAULT_ENABLED))
    return rules


def hold_reasons(order: Order, rules: dict[str, ReviewRule] | None = None) -> list[str]:
    """Codes of every enabled hold rule that matches ``order`` (empty: nothing holds it)."""
    rules = rules or active_rules()
    checks = {
        K.BUYER_REMARK: bool(order.buyer_remark.strip()),
        K.SELLER_REMARK: bool(order.seller_remark.strip()),
        K.ADDRESS_CHANGED: order.address_changed,
        K.AMOUNT_OVER: rules[K.AMOUNT_OVER].threshold_fen is not None
        and order.paid_fen > rules[K.AMOUNT_OVER].threshold_fen,
        K.PLATFORM_RISK: bool(order.ship_blocked_reason),
        K.STOCK_SHORT: order.is_out_of_stock,
        K.UNMATCHED: order.has_unmatched,
    }
    return [kind for kind, matched in checks.items() if matched and rules[kind].enabled]


def decide(order: Order, rules: dict[str, ReviewRule] | None = None) -> tuple[str, list[str]]:
    """("held", reasons) | ("approved", []) | ("to_review", [])."""
    rules = rules or active_rules()
    reasons = hold_reasons(order, rules)
    if reasons:
        return "held", reasons
    if rules[K.AUTO_APPROVE].enabled:
        return "approved", []
    return "to_review", []
