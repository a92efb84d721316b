"""Shipping settings (the rules, not the parcels): carrier rules (快递策略) and sender addresses.

Each function is one business action; every rule is checked here, so the pages and the API
refuse the same things with the same messages:

- a carrier rule names a carrier of the carrier table (``channels.carriers``), a sane weight
  range (0 … 1000 kg, min ≤ max), known shops, provinces by their full name (短名 such as
  "浙江" are completed), and an account only when it is an active account *of the same carrier
  of a shop the rule names* (an e-waybill account belongs to one shop);
- there is at most one default sender address (the database says so too); the first address
  becomes the default, and deleting the default makes the oldest remaining one the default. A
  dropship supplier's address (its ``warehouse`` is the supplier's) is never the default: it is
  that supplier's ship-from address only (``logistics.scope.sender_for``).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from channels import carriers
from channels.models import Store
from inventory.models import Warehouse
from logistics.models import CarrierRule, SenderAddress

MAX_WEIGHT_G = 1_000_000  # 1000 kg: beyond any parcel a carrier takes
MAX_PRIORITY = 1_000_000

#: province-level divisions by their full names (as the platforms send the receiver's province)
PROVINCES = (
    "北京市", "天津市", "上海市", "重庆市",
    "河北省", "山西省", "辽宁省", "吉林省", "黑龙江省", "江苏省", "浙江省", "安徽省", "福建省",
    "江西省", "山东省", "河南省", "湖北省", "湖南省", "广东省", "海南省", "四川省", "贵州省",
    "云南省", "陕西省", "甘肃省", "青海省", "台湾省",
    "内蒙古自治区", "广西壮族自治区", "西藏自治区", "宁夏回族自治区", "新疆维吾尔自治区",
    "香港特别行政区", "澳门特别行政区",
)  # fmt: skip
_SHORT = {}
for _full in PROVINCES:
    for _suffix in ("省", "市", "壮族自治区", "回族自治区", "维吾尔自治区", "自治区", "特别行政区"):
        if _full.endswith(_suffix):
            _SHORT[_full[: -len(_suffix)]] = _full
            break
    _SHORT[_full] = _full


def province_of(text: str) -> str:
    """The full province name for ``text`` ("浙江" → "浙江省"); "" when it is not a province."""
    return _SHORT.get(text.strip(), "")


def _clean_list(values, *, max_length: int) -> list[str]:
    out: list[str] = []
    for value in values or ():
        value = str(value).strip()
        if value and value not in out:
            if len(value) > max_length:
                raise ValidationError(
                    _("“%(value)s” is longer than %(n)d characters.") % {"value": value[:20], "n": max_length}
                )
            out.append(value)
    return out


def validate_carrier_rule(rule: CarrierRule) -> None:
    """Normalise ``rule`` in place and raise ValidationError (per field) when it cannot work."""
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    rule.name = (rule.name or "").strip()
    if not rule.name:
        add("name", _("Give the rule a name."))
    if rule.priority is None or not 0 <= rule.priority <= MAX_PRIORITY:
        add("priority", _("The priority is a whole number from 0 to %(n)d.") % {"n": MAX_PRIORITY})
    if rule.carrier not in carriers.CARRIERS:
        add("carrier", _("Unknown carrier “%(carrier)s”.") % {"carrier": rule.carrier})
    for field in ("min_weight_g", "max_weight_g"):
        value = getattr(rule, field)
        if value is not None and not 0 <= value <= MAX_WEIGHT_G:
            add(field, _("A weight is from 0 to %(n)d g.") % {"n": MAX_WEIGHT_G})
    if (
        rule.min_weight_g is not None
        and rule.max_weight_g is not None
        and rule.min_weight_g > rule.max_weight_g
    ):
        add("max_weight_g", _("The maximum weight is below the minimum weight."))

    rule.store_ids = sorted({int(pk) for pk in rule.store_ids or ()})
    known = set(Store.objects.filter(pk__in=rule.store_ids).values_list("pk", flat=True))
    if unknown := [pk for pk in rule.store_ids if pk not in known]:
        add("store_ids", _("No such shop: %(ids)s.") % {"ids": ", ".join(map(str, unknown))})

    provinces = []
    for text in rule.provinces or ():
        full = province_of(str(text))
        if not full:
            add("provinces", _("“%(name)s” is not a province.") % {"name": str(text).strip()[:20]})
        elif full not in provinces:
            provinces.append(full)
    rule.provinces = provinces
    try:
        rule.merchant_codes = _clean_list(rule.merchant_codes, max_length=64)
    except ValidationError as exc:
        add("merchant_codes", exc.messages[0])

    account = rule.account
    if account is not None:
        if not account.is_active:
            add("account", _("This waybill account is no longer listed by the platform."))
        if account.carrier != rule.carrier:
            add(
                "account",
                _("This account is for %(theirs)s, not %(ours)s.")
                % {"theirs": carriers.name_of(account.carrier), "ours": carriers.name_of(rule.carrier)},
            )
        if not rule.store_ids:
            add("account", _("A waybill account belongs to one shop: name that shop in the rule."))
        elif account.store_id not in rule.store_ids:
            add("account", _("This account belongs to a shop the rule does not name."))
    if errors:
        raise ValidationError(errors)


RULE_FIELDS = (
    "name",
    "priority",
    "enabled",
    "store_ids",
    "warehouse",
    "provinces",
    "min_weight_g",
    "max_weight_g",
    "merchant_codes",
    "carrier",
    "account",
)


@transaction.atomic
def save_carrier_rule(*, rule: CarrierRule | None = None, **values) -> CarrierRule:
    """Create (``rule`` None) or change a carrier rule; fields not given keep their value."""
    if unknown := set(values) - set(RULE_FIELDS):
        raise TypeError(f"unknown carrier rule fields: {sorted(unknown)}")
    if rule is None:
        rule = CarrierRule()
    else:
        rule = CarrierRule.objects.select_for_update().get(pk=rule.pk)
    for field, value in values.items():
        setattr(rule, field, value)
    validate_carrier_rule(rule)
    rule.full_clean()
    rule.save()
    return rule


def set_carrier_rule_enabled(*, rule: CarrierRule, enabled: bool) -> CarrierRule:
    """Switch a rule on or off (switching on checks it again: its account may be gone)."""
    if enabled and not rule.enabled:
        return save_carrier_rule(rule=rule, enabled=True)
    CarrierRule.objects.filter(pk=rule.pk).update(enabled=enabled)
    rule.refresh_from_db()
    return rule


def delete_carrier_rule(*, rule: CarrierRule) -> None:
    """Parcels keep the reason text that named the rule; nothing else refers to it."""
    CarrierRule.objects.filter(pk=rule.pk).delete()


# --- sender addresses ---------------------------------------------------------------------------

SENDER_FIELDS = ("name", "mobile", "province", "city", "district", "street", "detail", "warehouse")


def validate_sender(sender: SenderAddress) -> None:
    errors: dict[str, list[str]] = {}
    for field in SENDER_FIELDS:
        value = getattr(sender, field)
        if isinstance(value, str):
            setattr(sender, field, value.strip())
    phone = sender.mobile.replace(" ", "").replace("-", "")
    if not (phone.isdigit() and 7 <= len(phone) <= 20):
        errors["mobile"] = [_("Enter a phone number (digits, 7 to 20 of them).")]
    if sender.province and not province_of(sender.province):
        errors["province"] = [_("“%(name)s” is not a province.") % {"name": sender.province[:20]}]
    elif sender.province:
        sender.province = province_of(sender.province)
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def save_sender(
    *, sender: SenderAddress | None = None, make_default: bool = False, **values
) -> SenderAddress:
    """Create or change a sender address; the first one (or ``make_default``) is the default."""
    if unknown := set(values) - set(SENDER_FIELDS):
        raise TypeError(f"unknown sender fields: {sorted(unknown)}")
    # one writer at a time decides which address is the default
    list(SenderAddress.objects.select_for_update().order_by("id").values_list("pk", flat=True))
    if sender is None:
        sender = SenderAddress(is_default=not SenderAddress.objects.filter(is_default=True).exists())
    for field, value in values.items():
        setattr(sender, field, value)
    validate_sender(sender)
    sender.full_clean(exclude=["is_default"])
    if _is_suppliers(sender):
        if make_default:
            raise ValidationError(_("A supplier's sender address cannot be the default."))
        sender.is_default = False
    sender.save()
    if sender.is_default is False and not SenderAddress.objects.filter(is_default=True).exists():
        _promote_oldest()
    if make_default and not sender.is_default:
        return set_default_sender(sender=sender)
    return sender


def _is_suppliers(sender: SenderAddress) -> bool:
    return bool(sender.warehouse_id) and sender.warehouse.kind == Warehouse.Kind.SUPPLIER


def _promote_oldest() -> None:
    """The oldest of the merchant's own addresses becomes the default (a supplier's never does)."""
    first = SenderAddress.objects.exclude(warehouse__kind=Warehouse.Kind.SUPPLIER).order_by("id").first()
    if first is not None:
        SenderAddress.objects.filter(pk=first.pk).update(is_default=True)


@transaction.atomic
def set_default_sender(*, sender: SenderAddress) -> SenderAddress:
    if _is_suppliers(sender):
        raise ValidationError(_("A supplier's sender address cannot be the default."))
    list(SenderAddress.objects.select_for_update().order_by("id").values_list("pk", flat=True))
    SenderAddress.objects.filter(is_default=True).exclude(pk=sender.pk).update(is_default=False)
    SenderAddress.objects.filter(pk=sender.pk).update(is_default=True)
    sender.refresh_from_db()
    return sender


@transaction.atomic
def delete_sender(*, sender: SenderAddress) -> None:
    list(SenderAddress.objects.select_for_update().order_by("id").values_list("pk", flat=True))
    was_default = SenderAddress.objects.filter(pk=sender.pk, is_default=True).exists()
    SenderAddress.objects.filter(pk=sender.pk).delete()
    if was_default:
        _promote_oldest()


def default_sender() -> SenderAddress | None:
    return SenderAddress.objects.filter(is_default=True).first()
