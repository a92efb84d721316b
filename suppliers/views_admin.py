"""Merchant pages for suppliers: the list, create/edit, and a supplier's page with its SKUs
(商品), its stock (库存) and its users (账号); the public invitation page on the tenant domain.

Reading needs ``dashboard.view`` (staff); every change needs ``orders.manage``. Business rules
live in ``suppliers.services`` / ``suppliers.invites`` / ``suppliers.stock_import``."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.core.exceptions import ValidationError
from django.db.models import Count, F, IntegerField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from ecbao import money
from inventory.models import Sku, StockLevel
from suppliers import invites, services, stock_import
from suppliers.models import Supplier, SupplierSku
from tenants.accounts.forms import AcceptInvitationForm
from tenants.accounts.permissions import capability_required, has_capability

EDIT = "orders.manage"
READ = "dashboard.view"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_UPLOAD = 10 * 1024 * 1024


# --- forms ---------------------------------------------------------------------------------------


class SupplierForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Company"), max_length=100)
    code = forms.CharField(
        label=gettext_lazy("Supplier code"),
        max_length=28,
        help_text=gettext_lazy("Short and unique, e.g. HZ01; it cannot be changed later."),
    )
    contact_name = forms.CharField(label=gettext_lazy("Contact"), max_length=50, required=False)
    contact_phone = forms.CharField(label=gettext_lazy("Contact phone"), max_length=30, required=False)
    contact_email = forms.EmailField(label=gettext_lazy("Contact email"), required=False)
    settlement = forms.ChoiceField(
        label=gettext_lazy("Settlement terms"), choices=Supplier.Settlement.choices
    )
    ship_from_province = forms.CharField(
        label=gettext_lazy("Ships from (province)"), max_length=40, required=False
    )
    ship_from_city = forms.CharField(label=gettext_lazy("Ships from (city)"), max_length=40, required=False)
    cutoff = forms.TimeField(
        label=gettext_lazy("Cut-off time"),
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text=gettext_lazy("Orders routed after this time (Beijing time) ship the next day."),
    )
    daily_capacity = forms.IntegerField(
        label=gettext_lazy("Capacity per day (lines)"), min_value=1, max_value=10_000_000, required=False
    )
    status = forms.ChoiceField(label=gettext_lazy("Status"), choices=Supplier.Status.choices)
    notify_email = forms.EmailField(
        label=gettext_lazy("Notify by email"),
        required=False,
        help_text=gettext_lazy("New and cancelled dispatches are also sent here."),
    )
    webhook_url = forms.URLField(
        assume_scheme="https",
        label=gettext_lazy("Webhook URL"),
        required=False,
        help_text=gettext_lazy(
            "Optional: new and cancelled dispatches are posted here, signed with HMAC-SHA256."
        ),
    )
    may_reveal_receiver = forms.BooleanField(
        label=gettext_lazy("May reveal the receiver's full address"),
        required=False,
        help_text=gettext_lazy(
            "Warning: by default suppliers see masked receivers (张*, 138****8888). With this on, the "
            "supplier's users can reveal a receiver's full name, phone and address for shipping by hand: "
            "each view is a decrypt through the platform, counted against the shop's budget, audited and "
            "recorded as buyer data leaving to this supplier. Grant it only to a supplier bound by a "
            "data-protection agreement."
        ),
    )
    wechat_supplier_appid = forms.CharField(
        label=gettext_lazy("WeChat supplier appid"),
        max_length=64,
        required=False,
        help_text=gettext_lazy("For WeChat 小店 代发管理: dispatches go to the supplier on the platform."),
    )
    kuaishou_factory_code = forms.CharField(
        label=gettext_lazy("Kuaishou factory code"),
        max_length=64,
        required=False,
        help_text=gettext_lazy("For Kuaishou dropshipping: the factory's code on the platform."),
    )

    def __init__(self, *args, supplier: Supplier | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if supplier is not None:
            self.fields["code"].disabled = True
            self.fields["code"].help_text = ""
            self.fields["code"].required = False

    def values(self) -> dict:
        data = dict(self.cleaned_data)
        data.pop("code", None)
        for key in ("contact_name", "contact_phone", "ship_from_province", "ship_from_city"):
            data[key] = data[key].strip()
        return data


def _yuan_field(label, **kwargs) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        min_value=Decimal(0),
        max_value=Decimal("100000000"),
        decimal_places=2,
        max_digits=12,
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0", "class": "amount"}),
        **kwargs,
    )


class SupplierSkuForm(forms.Form):
    merchant_code = forms.CharField(label=gettext_lazy("Merchant code"), max_length=64)
    supplier_code = forms.CharField(label=gettext_lazy("Supplier code"), max_length=64, required=False)
    cost = _yuan_field(gettext_lazy("Cost (yuan)"))
    freight = forms.ChoiceField(label=gettext_lazy("Freight rule"), choices=SupplierSku.Freight.choices)
    freight_yuan = _yuan_field(gettext_lazy("Freight (yuan)"), required=False)
    priority = forms.IntegerField(
        label=gettext_lazy("Priority"),
        min_value=0,
        max_value=1_000_000,
        initial=100,
        help_text=gettext_lazy("When several suppliers supply a SKU, the smaller number goes first."),
    )

    def clean_merchant_code(self):
        code = self.cleaned_data["merchant_code"].strip()
        sku = Sku.objects.filter(merchant_code=code).first()
        if sku is None:
            raise ValidationError(_("No SKU has the merchant code %(code)s.") % {"code": code})
        self.sku = sku
        return code

    def clean(self):
        cleaned = super().clean()
        freight = cleaned.get("freight")
        if freight and freight != SupplierSku.Freight.FREE and not cleaned.get("freight_yuan"):
            self.add_error("freight_yuan", _("Enter the freight for this freight rule."))
        return cleaned

    def values(self) -> dict:
        data = self.cleaned_data
        return {
            "cost_fen": money.to_fen(data["cost"], exact=True),
            "supplier_code": data["supplier_code"].strip(),
            "freight": data["freight"],
            "freight_fen": money.to_fen(data.get("freight_yuan"), exact=True, blank=0),
            "priority": data["priority"],
        }


class InviteSupplierForm(forms.Form):
    email = forms.EmailField(
        label=gettext_lazy("Email"),
        required=False,
        help_text=gettext_lazy("Optional: whom the link is for (ecbao does not send it; you do)."),
    )


class ImportForm(forms.Form):
    file = forms.FileField(label=gettext_lazy("File"))

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD:
            raise ValidationError(_("The file is larger than 10 MB."))
        return upload


def _apply_errors(form: forms.Form, exc: ValidationError) -> None:
    by_field = exc.error_dict if hasattr(exc, "error_dict") else {None: exc.error_list}
    for field, errors in by_field.items():
        for error in errors:
            form.add_error(field if field in form.fields else None, error)


# --- list, create, edit --------------------------------------------------------------------------


def _annotated(qs):
    User = get_user_model()
    users = (
        User.objects.filter(supplier_id=OuterRef("pk"), is_active=True)
        .order_by()
        .values("supplier_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return qs.annotate(
        sku_count=Count("skus", distinct=True),
        user_count=Coalesce(Subquery(users, output_field=IntegerField()), Value(0)),
    )


@capability_required(READ)
def supplier_list(request):
    q = request.GET.get("q", "").strip()
    tab = request.GET.get("tab", "")
    if tab not in ("", *Supplier.Status.values):
        tab = ""
    qs = Supplier.objects.all()
    if q:
        qs = qs.filter(
            Q(code__icontains=q)
            | Q(name__icontains=q)
            | Q(contact_name__icontains=q)
            | Q(contact_phone__icontains=q)
        )
    counts = dict(qs.order_by().values_list("status").annotate(n=Count("pk")))
    tabs = [
        ("", _("All"), sum(counts.values())),
        (Supplier.Status.ACTIVE, _("Working with"), counts.get(Supplier.Status.ACTIVE, 0)),
        (Supplier.Status.PAUSED, _("Paused"), counts.get(Supplier.Status.PAUSED, 0)),
    ]
    tabs = [
        (value, label, n, urlencode({k: v for k, v in (("tab", value), ("q", q)) if v}))
        for value, label, n in tabs
    ]
    if tab:
        qs = qs.filter(status=tab)
    return render(
        request,
        "suppliers/supplier_list.html",
        {
            "suppliers": _annotated(qs).order_by("code")[:500],
            "tabs": tabs,
            "tab": tab,
            "q": q,
            "can_edit": has_capability(request.user, EDIT),
        },
    )


@capability_required(EDIT)
def supplier_create(request):
    form = SupplierForm(request.POST or None, initial={"status": Supplier.Status.ACTIVE})
    if request.method == "POST" and form.is_valid():
        try:
            supplier = services.create_supplier(
                name=form.cleaned_data["name"],
                code=form.cleaned_data["code"],
                **{k: v for k, v in form.values().items() if k != "name"},
            )
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, _("Supplier %(name)s created.") % {"name": supplier.name})
            return redirect("suppliers:detail", supplier.pk)
    return render(request, "suppliers/supplier_form.html", {"form": form, "supplier": None})


@capability_required(EDIT)
def supplier_edit(request, supplier_id: int):
    supplier = get_object_or_404(Supplier, pk=supplier_id)
    initial = {name: getattr(supplier, name) for name in SupplierForm.base_fields}
    form = SupplierForm(request.POST or None, initial=initial, supplier=supplier)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_supplier(supplier=supplier, **form.values())
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, _("Saved."))
            return redirect("suppliers:detail", supplier.pk)
    return render(request, "suppliers/supplier_form.html", {"form": form, "supplier": supplier})


@require_POST
@capability_required(EDIT)
def supplier_status(request, supplier_id: int):
    supplier = get_object_or_404(Supplier, pk=supplier_id)
    try:
        services.set_status(supplier=supplier, status=request.POST.get("status", ""))
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        if supplier.status == Supplier.Status.PAUSED:
            messages.success(
                request,
                _("%(name)s is paused: no new order lines are routed to it.") % {"name": supplier.name},
            )
        else:
            messages.success(request, _("%(name)s is active again.") % {"name": supplier.name})
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("suppliers:detail", args=[supplier.pk])
    return redirect(back)


# --- a supplier's page ---------------------------------------------------------------------------

TABS = (
    ("skus", gettext_lazy("Products")),
    ("stock", gettext_lazy("Stock")),
    ("users", gettext_lazy("Accounts")),
)


def _bindings(supplier: Supplier, q: str = ""):
    levels = StockLevel.objects.filter(warehouse=supplier.warehouse, sku=OuterRef("sku"))
    qs = SupplierSku.objects.filter(supplier=supplier).select_related("sku", "sku__goods")
    if q:
        qs = qs.filter(
            Q(sku__merchant_code__icontains=q) | Q(supplier_code__icontains=q) | Q(sku__name__icontains=q)
        )
    return (
        qs.annotate(
            on_hand=Coalesce(Subquery(levels.values("on_hand")[:1]), Value(0)),
            reserved=Coalesce(Subquery(levels.values("reserved")[:1]), Value(0)),
        )
        .annotate(available=F("on_hand") - F("reserved"))
        .order_by("sku__merchant_code")
    )


def _detail(request, supplier: Supplier, tab: str, *, status: int = 200, **extra):
    q = request.GET.get("q", "").strip()
    context = {
        "supplier": supplier,
        "tab": tab,
        "tabs": TABS,
        "q": q,
        "can_edit": has_capability(request.user, EDIT),
        "counts": {
            "skus": SupplierSku.objects.filter(supplier=supplier).count(),
            "users": invites.users_of(supplier).filter(is_active=True).count(),
        },
    }
    if tab in ("skus", "stock"):
        context["bindings"] = _bindings(supplier, q)[:1000]
    if tab == "skus":
        context.setdefault("sku_form", SupplierSkuForm(initial={"priority": 100}))
        context.setdefault("import_form", ImportForm())
    if tab == "stock":
        context.setdefault("import_form", ImportForm())
    if tab == "users":
        context["users"] = invites.users_of(supplier)
        context["invitations"] = invites.open_invitations(supplier)
        context.setdefault("invite_form", InviteSupplierForm())
    context.update(extra)
    return render(request, "suppliers/supplier_detail.html", context, status=status)


@capability_required(READ)
def supplier_detail(request, supplier_id: int):
    supplier = get_object_or_404(Supplier.objects.select_related("warehouse"), pk=supplier_id)
    tab = request.GET.get("tab", "skus")
    if tab not in dict(TABS):
        tab = "skus"
    return _detail(request, supplier, tab)


@require_POST
@capability_required(EDIT)
def sku_save(request, supplier_id: int):
    supplier = get_object_or_404(Supplier, pk=supplier_id)
    form = SupplierSkuForm(request.POST)
    if form.is_valid():
        try:
            services.set_supplier_sku(supplier=supplier, sku=form.sku, **form.values())
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, _("%(code)s saved.") % {"code": form.sku.merchant_code})
            return redirect(f"{reverse('suppliers:detail', args=[supplier_id])}?tab=skus")
    return _detail(request, supplier, "skus", status=400, sku_form=form, form_open=True)


@require_POST
@capability_required(EDIT)
def sku_remove(request, supplier_id: int, sku_id: int):
    supplier = get_object_or_404(Supplier, pk=supplier_id)
    item = get_object_or_404(SupplierSku.objects.select_related("sku"), supplier=supplier, sku_id=sku_id)
    try:
        services.remove_supplier_sku(supplier=supplier, sku=item.sku, user=request.user)
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(
            request, _("%(code)s removed from this supplier.") % {"code": item.sku.merchant_code}
        )
    return redirect(f"{reverse('suppliers:detail', args=[supplier_id])}?tab=skus")


def _import(request, supplier_id: int, tab: str, run):
    supplier = get_object_or_404(Supplier, pk=supplier_id)
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _detail(request, supplier, tab, status=400, import_form=form)
    report = run(form.cleaned_data["file"], supplier)
    status = 200 if report.ok else 400
    return _detail(request, supplier, tab, status=status, report=report)


@require_POST
@capability_required(EDIT)
def sku_import(request, supplier_id: int):
    return _import(request, supplier_id, "skus", lambda f, s: stock_import.import_skus(f, supplier=s))


@require_POST
@capability_required(EDIT)
def stock_import_view(request, supplier_id: int):
    return _import(
        request,
        supplier_id,
        "stock",
        lambda f, s: stock_import.import_stock(f, supplier=s, user=request.user),
    )


@require_POST
@capability_required(EDIT)
def stock_report(request, supplier_id: int):
    """The 库存 tab's form: one number per SKU (blank = unchanged) → report_stock each."""
    supplier = get_object_or_404(Supplier, pk=supplier_id)
    items = {
        str(item.sku_id): item for item in SupplierSku.objects.filter(supplier=supplier).select_related("sku")
    }
    errors, changed = [], 0
    for key, raw in request.POST.items():
        if not key.startswith("on_hand-") or not raw.strip():
            continue
        item = items.get(key.removeprefix("on_hand-"))
        if item is None:
            continue
        text = raw.strip()
        if not text.isdigit():
            errors.append(f"{item.sku.merchant_code}：{_('Enter a whole number, 0 or more.')}")
            continue
        try:
            changed += services.report_stock(
                supplier=supplier, sku=item.sku, on_hand=int(text), user=request.user
            )
        except ValidationError as exc:
            errors.extend(exc.messages)
    for message in errors:
        messages.error(request, message)
    messages.success(request, _("Stock saved: %(n)d changed.") % {"n": changed})
    return redirect(f"{reverse('suppliers:detail', args=[supplier_id])}?tab=stock")


def _download(content: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=XLSX)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@capability_required(READ)
def sku_template(request):
    return _download(stock_import.sku_template(), "supplier-skus.xlsx")


@capability_required(READ)
def stock_template(request):
    return _download(stock_import.stock_template(), "supplier-stock.xlsx")


@capability_required(READ)
def sku_export(request, supplier_id: int):
    supplier = get_object_or_404(Supplier, pk=supplier_id)
    return _download(stock_import.sku_workbook(supplier), f"supplier-{supplier.code}-skus.xlsx")


# --- users and invitations -----------------------------------------------------------------------


@require_POST
@capability_required(EDIT)
def invite_create(request, supplier_id: int):
    supplier = get_object_or_404(Supplier, pk=supplier_id)
    form = InviteSupplierForm(request.POST)
    if not form.is_valid():
        return _detail(request, supplier, "users", status=400, invite_form=form)
    if supplier.status != Supplier.Status.ACTIVE:
        form.add_error(None, _("Activate the supplier before inviting its users."))
        return _detail(request, supplier, "users", status=400, invite_form=form)
    _invitation, raw_token = invites.invite(
        supplier=supplier, invited_by=request.user, email=form.cleaned_data["email"]
    )
    link = request.build_absolute_uri(reverse("suppliers:accept_invite", args=[raw_token]))
    return _detail(request, supplier, "users", invite_link=link, invite_form=InviteSupplierForm())


@require_POST
@capability_required(EDIT)
def invite_cancel(request, supplier_id: int, invitation_id: int):
    supplier = get_object_or_404(Supplier, pk=supplier_id)
    if not invites.cancel_invitation(supplier=supplier, invitation_id=invitation_id):
        raise Http404(_("This invitation is invalid, used or expired."))
    messages.success(request, _("Invitation cancelled."))
    return redirect(f"{reverse('suppliers:detail', args=[supplier_id])}?tab=users")


@require_POST
@capability_required(EDIT)
def user_active(request, supplier_id: int, user_id: int):
    supplier = get_object_or_404(Supplier, pk=supplier_id)
    active = request.POST.get("action") == "activate"
    try:
        user = invites.set_user_active(supplier=supplier, user_id=user_id, active=active)
    except ValidationError as exc:
        raise Http404(exc.messages[0]) from exc
    if active:
        messages.success(request, _("%(user)s can sign in again.") % {"user": user.username})
    else:
        messages.success(
            request, _("%(user)s is deactivated and can no longer sign in.") % {"user": user.username}
        )
    return redirect(f"{reverse('suppliers:detail', args=[supplier_id])}?tab=users")


def accept_invite(request, token: str):
    """Public (no login): the invited person chooses a username and password."""
    invitation = invites.open_invitation(raw_token=token)
    if invitation is None:
        raise Http404(_("This invitation is invalid, used or expired."))
    form = AcceptInvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = invites.accept(
                raw_token=token,
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password1"],
            )
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("/supplier/")
    return render(request, "suppliers/invite_accept.html", {"form": form, "invitation": invitation})
