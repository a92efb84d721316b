"""What a supplier does in the portal and through the supplier API, always inside its
:class:`~suppliers.portal.scope.Scope`, and always through logistics' own path:

- ``enter_tracking``: a tracking number for one dispatch (optionally for some of its lines:
  the rest stays in a parcel of its own) → ``logistics.manual.enter_tracking`` on the
  dispatch's own parcel → ``logistics.shipping.ship_parcels`` (stock out, order shipped, one
  write-back per (parcel, order)). Never the order's other parcels: an order split between
  the merchant's warehouse and suppliers has parcels the supplier must not touch.
- ``import_tracking``: the same per row of an xlsx workbook (``logistics.manual``'s layout and
  reader), rows naming an order the supplier has no dispatch of are row errors like unknown ones.
- ``reveal_receiver``: one receiver field in plain text, only where the merchant granted it
  (``Supplier.may_reveal_receiver``): one audited decrypt through the channel layer and a
  ``ReceiverReveal`` row (the outflow record). The text is returned, never stored or logged.
- API tokens of the supplier user (the foundation's knox tokens).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from channels import services as channel_services
from logistics import manual, shipping
from logistics import services as parcel_services
from logistics.models import Parcel, ShipBatch
from orders.models import Order
from suppliers import dispatches as lifecycle
from suppliers.models import Dispatch, DispatchLine, ReceiverReveal
from suppliers.portal.scope import Scope
from tenants.accounts import selectors as account_selectors
from tenants.accounts import services as account_services

logger = logging.getLogger(__name__)
P = Parcel.Status
S = Dispatch.Status
SHIPPABLE = (S.NEW, S.ACKNOWLEDGED, S.PARTIALLY_SHIPPED)
UNSHIPPED = (P.NEW, P.NUMBERED, P.PRINTED, P.VERIFIED)
RECEIVER_FIELDS = ("name", "phone", "address")


def _native_refusal() -> str:
    return _("This dispatch is shipped on the platform (platform dropship): ship it there.")


# --- shipping a dispatch -------------------------------------------------------------------------------


def open_parcels(dispatch: Dispatch) -> list[Parcel]:
    """The dispatch's parcels waiting to ship (made first where the fulfilment has none)."""

    def waiting() -> list[Parcel]:
        return list(
            Parcel.objects.filter(fulfilment_id=dispatch.fulfilment_id, status__in=UNSHIPPED).order_by("seq")
        )

    parcels = waiting()
    if not parcels and dispatch.status in SHIPPABLE:
        parcel_services.ensure_parcels(fulfilments=[dispatch.fulfilment_id])
        parcels = waiting()
    return parcels


def parcel_ids(scope: Scope, dispatch_ids) -> list[int]:
    """The unshipped parcels of these dispatches (only the supplier's own), made where missing."""
    ids = scope.dispatch_ids(dispatch_ids)
    result = []
    shippable = scope.dispatches().filter(pk__in=ids, status__in=SHIPPABLE + (S.SHIPPED,), native="")
    for dispatch in shippable:  # a platform-native dispatch ships on the platform, never here
        result += [p.pk for p in open_parcels(dispatch)]
    return result


def _plan(dispatch: Dispatch, lines: dict[int, int]) -> Parcel:
    """The parcel that carries exactly ``lines`` ({order line id: quantity}) of the dispatch;
    planned (these lines in one parcel, the rest in another) when none does."""
    open_parcels(dispatch)
    fulfilment_id = dispatch.fulfilment_id
    wanted = parcel_services.open_quantities(dispatch.fulfilment)
    own_lines = set(DispatchLine.objects.filter(dispatch=dispatch).values_list("order_line_id", flat=True))
    for line_id, qty in lines.items():
        if line_id not in own_lines:
            raise ValidationError(_("Line %(line)s is not part of this dispatch.") % {"line": line_id})
        if qty < 1 or qty > wanted.get(line_id, 0):
            raise ValidationError(
                _("Line %(line)s: %(qty)s cannot ship, %(left)s left to ship.")
                % {"line": line_id, "qty": qty, "left": wanted.get(line_id, 0)}
            )
    for parcel in Parcel.objects.filter(fulfilment_id=fulfilment_id, status__in=UNSHIPPED).prefetch_related(
        "lines"
    ):
        if {pl.order_line_id: pl.quantity for pl in parcel.lines.all()} == lines:
            return parcel
    rest = {k: v - lines.get(k, 0) for k, v in wanted.items() if v - lines.get(k, 0) > 0}
    plans = [lines, rest] if rest else [lines]
    created = parcel_services.plan_parcels(fulfilment=fulfilment_id, parcels=plans)
    return created[0]


def ship(*, scope: Scope, dispatch_ids, actor):
    """发货: the unshipped parcels of these dispatches (the supplier's own) through
    ``logistics.shipping.ship_parcels``; the dispatches follow. Returns the ShipResult."""
    ids = parcel_ids(scope, dispatch_ids)
    result = shipping.ship_parcels(ids, actor=actor, warehouse=scope.warehouse_id)
    lifecycle.refresh_fulfilments(scope.parcels().filter(pk__in=ids).values_list("fulfilment_id", flat=True))
    return ids, result


def acknowledge(*, scope: Scope, dispatch_ids, actor) -> int:
    """接单 on the supplier's own dispatches among ``dispatch_ids`` (新单 only)."""
    return lifecycle.acknowledge(dispatches=scope.dispatch_ids(dispatch_ids), actor=actor)


def confirm_cancel(*, scope: Scope, dispatch: Dispatch, intercepted: bool, actor) -> Dispatch:
    return lifecycle.confirm_cancel(
        dispatch=scope.dispatch(dispatch.pk), intercepted=intercepted, actor=actor
    )


@dataclass
class Entry:
    parcel: Parcel
    changed: bool
    shipped: bool
    ship_error: str = ""


def _already(dispatch: Dispatch, carrier: str, tracking_no: str) -> Parcel | None:
    key = manual.resolve_carrier(carrier, platform=dispatch.store.platform)
    if not key:
        return None
    try:
        number = manual.clean_tracking_no(key, tracking_no)
    except ValidationError:
        return None
    return (
        Parcel.objects.filter(fulfilment_id=dispatch.fulfilment_id, carrier=key, tracking_no=number)
        .exclude(status=P.CANCELLED)
        .first()
    )


def enter_tracking(
    *,
    scope: Scope,
    dispatch: Dispatch,
    carrier: str,
    tracking_no: str,
    actor,
    lines: dict[int, int] | None = None,
) -> Entry:
    """A tracking number for ``dispatch`` (the supplier's own, checked again here), entered on its
    parcel and shipped through logistics. ``lines``: ship only these order lines/quantities now.
    Entering a number that is already on the dispatch's parcel changes nothing."""
    dispatch = scope.dispatch(dispatch.pk)
    if dispatch.native:
        raise ValidationError(_native_refusal())
    same = _already(dispatch, carrier, tracking_no)
    if same is not None:
        entry = manual.enter_tracking(same, carrier, tracking_no, actor=actor, warehouse=scope.warehouse_id)
        lifecycle.refresh(dispatch)
        return Entry(entry.parcel, entry.changed, entry.shipped, entry.ship_error)
    if dispatch.status not in SHIPPABLE:
        raise ValidationError(
            _("This dispatch is “%(status)s”: it cannot ship.") % {"status": dispatch.get_status_display()}
        )
    if lines:
        parcel = _plan(dispatch, {int(k): int(v) for k, v in lines.items()})
    else:
        parcels = open_parcels(dispatch)
        if not parcels:
            raise ValidationError(_("This dispatch has nothing left to ship."))
        free = [p for p in parcels if not p.tracking_no]
        parcel = (free or parcels)[0]
    entry = manual.enter_tracking(parcel, carrier, tracking_no, actor=actor, warehouse=scope.warehouse_id)
    lifecycle.refresh(dispatch)
    return Entry(entry.parcel, entry.changed, entry.shipped, entry.ship_error)


# --- xlsx import ---------------------------------------------------------------------------------------------


def start_import(*, scope: Scope, file, actor):
    """Enter and ship a workbook's tracking numbers (``logistics.manual``'s layout: 平台订单号,
    快递公司, 运单号, optional 店铺) through ``logistics.manual.start_import`` scoped to the
    supplier's warehouse: a row naming an order the supplier ships nothing of is that row's error
    ("不是你的代发单"), whether the order exists or not. Small files run now, large ones in a worker."""
    return manual.start_import(file, actor=actor, warehouse=scope.warehouse_id)


def import_batch(*, scope: Scope, batch_id: int, actor):
    """One of this user's import batches (the supplier's scope), or None; once it finished, the
    dispatches it shipped follow their parcels."""
    from logistics import scope as shipping_scope

    batch = ShipBatch.objects.filter(
        pk=batch_id, kind=ShipBatch.Kind.IMPORT_TRACKING, created_by=actor
    ).first()
    if batch is None:
        return None
    try:
        shipping_scope.check_batch(batch, scope.warehouse_id)
    except ValidationError:
        return None
    if batch.status == ShipBatch.Status.DONE:
        follow_shipped(scope)
    return batch


def follow_shipped(scope: Scope) -> int:
    """Refresh the supplier's open dispatches that have shipped parcels (``dispatches.refresh``)."""
    fulfilments = (
        scope.dispatches()
        .filter(status__in=lifecycle.ACTIVE, fulfilment__parcels__status=P.SHIPPED)
        .values_list("fulfilment_id", flat=True)
        .distinct()
    )
    return lifecycle.refresh_fulfilments(list(fulfilments))


# --- receiver reveal -------------------------------------------------------------------------------------------


def receiver_order(dispatch: Dispatch) -> Order:
    """The order whose receiver the dispatch ships to (a merged fulfilment: one receiver)."""
    return (
        Order.objects.select_related("store")
        .filter(lines__dispatch_lines__dispatch=dispatch)
        .order_by("pk")
        .distinct()
        .first()
    )


def reveal_receiver(*, scope: Scope, dispatch: Dispatch, field: str, user, ip: str | None) -> str:
    """One receiver field in plain text for this supplier user (see the module docstring).
    PermissionDenied without the merchant's grant (and then nothing is decrypted)."""
    if field not in RECEIVER_FIELDS:
        raise ValidationError(_("Unknown receiver field."))
    dispatch = scope.dispatch(dispatch.pk)
    if not scope.supplier.may_reveal_receiver or dispatch.native:
        raise PermissionDenied(_("The merchant has not allowed you to see full receiver data."))
    order = receiver_order(dispatch)
    if order is None:
        raise ValidationError(_("This dispatch has no order."))
    cipher = {
        "name": order.receiver_name_cipher,
        "phone": order.receiver_phone_cipher,
        "address": order.receiver_address_cipher,
    }[field]
    text = channel_services.decrypt_receiver_field(
        store=order.store,
        platform_order_id=order.platform_order_id,
        field=field,
        cipher=cipher,
        user=user,
        ip=ip,
    )
    ReceiverReveal.objects.create(supplier=scope.supplier, dispatch=dispatch, user=user, field=field, ip=ip)
    return text


# --- API tokens ------------------------------------------------------------------------------------------------


def tokens(*, user):
    return account_selectors.api_tokens().filter(user=user)


def issue_token(*, user, name: str, days: int | None = None):
    """A supplier API token (key shown once). Only for a user linked to a supplier."""
    if Scope.of(user) is None:  # pragma: no cover - Scope.of raises
        raise PermissionDenied
    return account_services.issue_api_token(user=user, name=name, days=days)


@transaction.atomic
def revoke_token(*, user, digest: str):
    """Revoke one of the user's own tokens (a supplier never revokes anyone else's)."""
    token = tokens(user=user).filter(digest=digest).first()
    if token is None:
        raise PermissionDenied(_("No such token."))
    return account_services.revoke_api_token(actor=user, digest=digest)
