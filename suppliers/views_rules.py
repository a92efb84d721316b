"""Merchant pages of routing (分流): rule sets (versions), the draft editor, the dry run,
activation, and the routing exception queue (orders waiting for a shipper).

Thin: writes through ``suppliers.rules`` and ``orders.services.release``. Reading needs
dashboard.view; changing rules, dry runs and re-routing need orders.manage.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from channels.models import Store
from channels.types import Platform
from ecbao import money
from inventory.models import Goods, Sku, Warehouse
from logistics.forms_admin import ListField
from orders import services as order_services
from orders.models import Order, OrderStatus
from orders.status import InvalidTransition
from suppliers import routing, rules
from suppliers.models import RouteRule, RuleSet, Supplier
from tenants.accounts.permissions import capability_required

MAX_IDS = 500
WEEKDAYS = [(1, "周一"), (2, "周二"), (3, "周三"), (4, "周四"), (5, "周五"), (6, "周六"), (7, "周日")]


def _put_errors(form, exc: ValidationError) -> None:
    """A service's per-field refusal onto the form (fields it does not have: the whole form)."""
    fields = {
        "skus": "sku_codes",
        "goods": "goods_codes",
        "amount_min_fen": "amount_min",
        "amount_max_fen": "amount_max",
        "hours": "hour_from",
    }
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            field = fields.get(field, field)
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


class RouteRuleForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=60)
    priority = forms.IntegerField(
        label=gettext_lazy("Priority"),
        min_value=1,
        max_value=1_000_000,
        required=False,
        help_text=gettext_lazy("Smaller first; empty: after the last rule."),
    )
    enabled = forms.BooleanField(label=gettext_lazy("Enabled"), required=False, initial=True)
    action = forms.ChoiceField(label=gettext_lazy("Action"), choices=RouteRule.Action.choices)
    supplier = forms.ModelChoiceField(
        label=gettext_lazy("Supplier"), queryset=Supplier.objects.none(), required=False,
        help_text=gettext_lazy("For “Send to supplier”."),
    )  # fmt: skip
    warehouse = forms.ModelChoiceField(
        label=gettext_lazy("Own warehouse"), queryset=Warehouse.objects.none(), required=False,
        help_text=gettext_lazy("For “Send to own warehouse”."),
    )  # fmt: skip
    stores = forms.TypedMultipleChoiceField(
        label=gettext_lazy("Shops"), coerce=int, required=False, widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy("None ticked: every shop."),
    )  # fmt: skip
    platforms = forms.MultipleChoiceField(
        label=gettext_lazy("Platforms"), required=False, widget=forms.CheckboxSelectMultiple,
        choices=[(p.value, routing.PLATFORM_NAMES.get(p.value, p.value)) for p in Platform],
    )  # fmt: skip
    sku_codes = ListField(
        label=gettext_lazy("SKU merchant codes"), required=False, max_length=8000,
        help_text=gettext_lazy("Separated by spaces or commas; empty: any SKU."),
    )  # fmt: skip
    goods_codes = ListField(label=gettext_lazy("Goods codes"), required=False, max_length=4000)
    brands = ListField(label=gettext_lazy("Brands"), required=False, max_length=2000)
    categories = ListField(label=gettext_lazy("Categories"), required=False, max_length=2000)
    provinces = ListField(
        label=gettext_lazy("Receiver provinces"), required=False, max_length=2000,
        help_text=gettext_lazy("e.g. 浙江 江苏 上海 (with or without 省/市)."),
    )  # fmt: skip
    cities = ListField(label=gettext_lazy("Receiver cities"), required=False, max_length=2000)
    amount_min = forms.CharField(
        label=gettext_lazy("Order amount from (yuan)"), required=False, max_length=20
    )
    amount_max = forms.CharField(
        label=gettext_lazy("Order amount up to (yuan)"), required=False, max_length=20
    )
    tags = ListField(
        label=gettext_lazy("Order tags (any of)"), required=False, max_length=2000,
        help_text=gettext_lazy("buyer_remark, seller_remark, refunding, or #words in the seller remark."),
    )  # fmt: skip
    hour_from = forms.IntegerField(
        label=gettext_lazy("Paid from (hour)"), min_value=0, max_value=23, required=False
    )
    hour_to = forms.IntegerField(
        label=gettext_lazy("Paid before (hour)"), min_value=0, max_value=24, required=False,
        help_text=gettext_lazy("Asia/Shanghai; from 22 to 6 spans midnight."),
    )  # fmt: skip
    weekdays = forms.TypedMultipleChoiceField(
        label=gettext_lazy("Weekdays"), coerce=int, required=False, widget=forms.CheckboxSelectMultiple,
        choices=WEEKDAYS,
    )  # fmt: skip

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["supplier"].queryset = Supplier.objects.order_by("code")
        self.fields["warehouse"].queryset = Warehouse.objects.filter(kind=Warehouse.Kind.OWN, is_active=True)
        self.fields["stores"].choices = [
            (s.pk, f"{s.get_platform_display()} · {s.name}")
            for s in Store.objects.order_by("platform", "name")
        ]

    def _fen(self, name):
        try:
            return money.to_fen(self.cleaned_data.get(name), blank=None)
        except money.MoneyError:
            self.add_error(name, _("Enter an amount in yuan, e.g. 99.50"))
            return None

    def conditions(self) -> dict:
        """The conditions as ``RouteRule.conditions`` (codes resolved to ids)."""
        d = self.cleaned_data
        c: dict = {}
        if d.get("stores"):
            c["stores"] = d["stores"]
        if d.get("platforms"):
            c["platforms"] = d["platforms"]
        if d.get("sku_codes"):
            found = dict(
                Sku.objects.filter(merchant_code__in=d["sku_codes"]).values_list("merchant_code", "pk")
            )
            unknown = [code for code in d["sku_codes"] if code not in found]
            if unknown:
                self.add_error(
                    "sku_codes", _("Unknown merchant codes: %(codes)s") % {"codes": " ".join(unknown[:10])}
                )
            c["skus"] = sorted(set(found.values()))
        if d.get("goods_codes"):
            found = dict(Goods.objects.filter(code__in=d["goods_codes"]).values_list("code", "pk"))
            unknown = [code for code in d["goods_codes"] if code not in found]
            if unknown:
                self.add_error(
                    "goods_codes", _("Unknown goods codes: %(codes)s") % {"codes": " ".join(unknown[:10])}
                )
            c["goods"] = sorted(set(found.values()))
        for key in ("brands", "categories", "provinces", "cities", "tags"):
            if d.get(key):
                c[key] = d[key]
        for name, key in (("amount_min", "amount_min_fen"), ("amount_max", "amount_max_fen")):
            fen = self._fen(name)
            if fen is not None:
                c[key] = fen
        if d.get("hour_from") is not None or d.get("hour_to") is not None:
            c["hours"] = [d.get("hour_from"), d.get("hour_to")]
            if None in c["hours"]:
                self.add_error("hour_from", _("Give both hours, or neither."))
        if d.get("weekdays"):
            c["weekdays"] = d["weekdays"]
        return c

    @staticmethod
    def initial_for(rule: RouteRule) -> dict:
        c = rule.conditions or {}
        initial = {
            "name": rule.name,
            "priority": rule.priority,
            "enabled": rule.enabled,
            "action": rule.action,
            "supplier": rule.supplier_id,
            "warehouse": rule.warehouse_id,
            "stores": c.get("stores", []),
            "platforms": c.get("platforms", []),
            "sku_codes": list(
                Sku.objects.filter(pk__in=c.get("skus", [])).values_list("merchant_code", flat=True)
            ),
            "goods_codes": list(
                Goods.objects.filter(pk__in=c.get("goods", [])).values_list("code", flat=True)
            ),
            "weekdays": c.get("weekdays", []),
        }
        for key in ("brands", "categories", "provinces", "cities", "tags"):
            initial[key] = c.get(key, [])
        for name, key in (("amount_min", "amount_min_fen"), ("amount_max", "amount_max_fen")):
            if c.get(key) is not None:
                initial[name] = money.format_yuan(c[key])
        if c.get("hours"):
            initial["hour_from"], initial["hour_to"] = c["hours"]
        return initial


# --- rule sets --------------------------------------------------------------------------------------------


def _decorate(rule: RouteRule) -> RouteRule:
    rule.description = routing.describe_conditions(rule.conditions or {})
    return rule


@capability_required("dashboard.view")
def rule_sets(request):
    sets = RuleSet.objects.select_related("created_by").order_by("-version")
    counts = dict(
        RouteRule.objects.values("rule_set_id").annotate(n=Count("id")).values_list("rule_set_id", "n")
    )
    for s in sets:
        s.rule_count = counts.get(s.pk, 0)
    return render(
        request,
        "suppliers/rules.html",
        {"rule_sets": sets, "exception_count": rules.routing_exception_count()},
    )


@require_POST
@capability_required("orders.manage")
def rule_set_new(request):
    draft = rules.create_draft(user=request.user, note=request.POST.get("note", "")[:200])
    messages.success(request, _("Draft v%(v)d made from the active rules.") % {"v": draft.version})
    return redirect("suppliers:rule_set", draft.pk)


@capability_required("dashboard.view")
def rule_set(request, pk):
    rule_set = get_object_or_404(RuleSet, pk=pk)
    rule_set.is_draft = rule_set.status == RuleSet.Status.DRAFT
    items = [
        _decorate(r)
        for r in rule_set.rules.select_related("supplier", "warehouse").order_by("priority", "id")
    ]
    return render(request, "suppliers/rules_set.html", {"rule_set": rule_set, "rules": items})


def _rule_form_page(request, rule_set: RuleSet, rule: RouteRule | None):
    if rule_set.status != RuleSet.Status.DRAFT:
        messages.error(request, _("Only a draft can be changed: make a new draft first."))
        return redirect("suppliers:rule_set", rule_set.pk)
    status = 200
    if request.method == "POST":
        form = RouteRuleForm(request.POST)
        if form.is_valid():
            conditions = form.conditions()
            if form.is_valid():  # resolving codes may add errors
                d = form.cleaned_data
                fields = {
                    "name": d["name"],
                    "action": d["action"],
                    "conditions": conditions,
                    "supplier": d["supplier"] if d["action"] == routing.SUPPLIER else None,
                    "warehouse": d["warehouse"] if d["action"] == routing.WAREHOUSE else None,
                    "priority": d["priority"],
                    "enabled": d["enabled"],
                }
                try:
                    if rule is None:
                        saved = rules.add_rule(rule_set=rule_set, **fields)
                    else:
                        if fields["priority"] is None:
                            fields["priority"] = rule.priority
                        saved = rules.update_rule(rule=rule, **fields)
                except ValidationError as exc:
                    _put_errors(form, exc)
                else:
                    messages.success(request, _("Saved the rule “%(name)s”.") % {"name": saved.name})
                    return redirect("suppliers:rule_set", rule_set.pk)
        status = 400
    else:
        form = RouteRuleForm(initial=RouteRuleForm.initial_for(rule) if rule else None)
    return render(
        request,
        "suppliers/rules_form.html",
        {"form": form, "rule": rule, "rule_set": rule_set},
        status=status,
    )


@capability_required("orders.manage")
def rule_new(request, pk):
    return _rule_form_page(request, get_object_or_404(RuleSet, pk=pk), None)


@capability_required("orders.manage")
def rule_edit(request, pk, rule_id):
    rule = get_object_or_404(RouteRule, pk=rule_id, rule_set_id=pk)
    return _rule_form_page(request, rule.rule_set, rule)


def _refused(request, exc: ValidationError) -> None:
    messages.error(request, "；".join(exc.messages))


@require_POST
@capability_required("orders.manage")
def rule_delete(request, pk, rule_id):
    rule = get_object_or_404(RouteRule, pk=rule_id, rule_set_id=pk)
    try:
        rules.delete_rule(rule=rule)
    except ValidationError as exc:
        _refused(request, exc)
    else:
        messages.success(request, _("Deleted the rule “%(name)s”.") % {"name": rule.name})
    return redirect("suppliers:rule_set", pk)


@require_POST
@capability_required("orders.manage")
def rule_move(request, pk, rule_id):
    """Move a rule one place up (``direction=up``) or down."""
    rule_set = get_object_or_404(RuleSet, pk=pk)
    ids = list(rule_set.rules.order_by("priority", "id").values_list("pk", flat=True))
    if rule_id in ids:
        i = ids.index(rule_id)
        j = i - 1 if request.POST.get("direction") == "up" else i + 1
        if 0 <= j < len(ids):
            ids[i], ids[j] = ids[j], ids[i]
            try:
                rules.reorder(rule_set=rule_set, rule_ids=ids)
            except ValidationError as exc:
                _refused(request, exc)
    return redirect("suppliers:rule_set", pk)


@require_POST
@capability_required("orders.manage")
def rule_set_activate(request, pk):
    rule_set = get_object_or_404(RuleSet, pk=pk)
    try:
        rules.activate(rule_set=rule_set, user=request.user)
    except ValidationError as exc:
        _refused(request, exc)
    else:
        messages.success(
            request,
            _(
                "Rules v%(v)d are active. Lines already dispatched keep their shipper; orders still in review are routed again when approved."
            )
            % {"v": rule_set.version},
        )
    return redirect("suppliers:rule_set", pk)


@require_POST
@capability_required("orders.manage")
def rule_set_delete(request, pk):
    rule_set = get_object_or_404(RuleSet, pk=pk)
    try:
        rules.delete_draft(rule_set=rule_set)
    except ValidationError as exc:
        _refused(request, exc)
        return redirect("suppliers:rule_set", pk)
    messages.success(request, _("Deleted draft v%(v)d.") % {"v": rule_set.version})
    return redirect("suppliers:rules")


@capability_required("orders.manage")
def rule_set_dry_run(request, pk):
    rule_set = get_object_or_404(RuleSet, pk=pk)
    raw = request.GET.get("days", "7")
    days = int(raw) if raw.isdigit() and len(raw) < 4 else 0
    try:
        result = rules.dry_run(rule_set=rule_set, days=days)
    except ValidationError as exc:
        _refused(request, exc)
        return redirect("suppliers:rule_set", pk)
    only_moves = request.GET.get("all") != "1"
    shown = [x for x in result.lines if x.moves or not only_moves][:1000]
    for x in shown:
        x.current_name, x.new_name = result.name(x.current_warehouse_id), result.name(x.warehouse_id)
    return render(
        request,
        "suppliers/rules_dry_run.html",
        {"rule_set": rule_set, "result": result, "shown": shown, "only_moves": only_moves, "days": days},
    )


# --- the exception queue ------------------------------------------------------------------------------------


@capability_required("dashboard.view")
def exceptions(request):
    waiting = rules.routing_exceptions()
    return render(request, "suppliers/exceptions.html", {"orders": waiting, "exception_count": len(waiting)})


@require_POST
@capability_required("orders.manage")
def exceptions_reroute(request):
    """重新分流: release the ticked held orders (their lines are routed again)."""
    raw = [request.POST["one"]] if request.POST.get("one") else request.POST.getlist("ids")
    ids = [int(v) for v in raw if v.isdigit() and len(v) < 19][:MAX_IDS]
    if not ids:
        messages.error(request, _("Tick at least one order."))
        return redirect("suppliers:exceptions")
    routed, still = 0, 0
    for order in Order.objects.filter(pk__in=ids).order_by("paid_at", "id"):
        try:
            order = order_services.release(order=order, actor=request.user)
        except (InvalidTransition, ValidationError):
            still += 1
            continue
        if order.status == OrderStatus.HELD:
            still += 1
        else:
            routed += 1
    messages.success(
        request,
        _("Routed again: %(ok)d order(s) found a shipper, %(still)d still wait.")
        % {"ok": routed, "still": still},
    )
    return redirect("suppliers:exceptions")
