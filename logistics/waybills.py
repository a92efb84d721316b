"""E-waybill numbers for parcels: accounts, taking (one at a time and in batches), cancelling.

- ``sync_accounts(store)`` reads the shop's e-waybill subscriptions from the platform into
  ``WaybillAccount`` rows (idempotent; an account the platform stops listing becomes inactive
  and keeps its last balances);
- ``take_for_parcel(parcel)`` takes one number for one parcel. The ``Waybill`` row with its
  idempotency ``key`` is committed **before** the platform call; a retry after a timeout or a
  lost reply sends the same key, and the platform hands back the same number (WeChat's
  ``ewaybill_order_id``, Douyin's ``pack_id``, Kuaishou's ``requestId`` are derived from it).
  A clear refusal marks the row FAILED; the next take uses a new key (generation + 1). The
  receiver is the platform's own ciphertext: only the orders' platform ids are sent. Rate
  limits (WeChat ≈500 e-waybill calls a minute → 45011) are waited out, then the same call
  resumes; the parcel does not fail for them;
- a fulfilment shipped as n parcels takes one carrier (parcel 1's choice) and either one number
  per parcel, or — where ``channels.carriers.child_waybills`` says the platform has them for
  the carrier — one parent number on parcel 1 with n−1 child numbers (子母件) for parcels 2..n;
  a merged parcel sends every order's platform id (the receiver is the first order's);
- ``start_take(parcel_ids)`` queues a ``ShipBatch`` run by a Celery task (one thread per shop,
  so three platforms proceed side by side, each at its own pace); progress on the batch,
  per-parcel errors in ``Parcel.error``; a retry is ``start_take`` with the failed ids;
- ``cancel_parcel_waybill(parcel)`` cancels an unused number at the platform (recycled to the
  account's balance), refused once shipped; the parcel goes back to NEW. Cancelling one parcel
  of a parent/child group cancels the group (the platforms cancel children with their parent).

Parcel states: NEW → NUMBERED (tracking number, carrier, account recorded).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext
from django_tenants.utils import schema_context

from channels import carriers
from channels import services as channel_services
from channels import types as ct
from channels.connectors.base import Connector
from channels.errors import AuthExpired, ChannelError, PlatformRejected, RateLimited
from channels.models import Store
from logistics import scope, selectors
from logistics import services as parcel_services
from logistics.carrier_rules import Choice, choose_carrier, parcel_facts
from logistics.models import Parcel, ParcelLine, ShipBatch, Waybill, WaybillAccount
from orders.models import Order, OrderEvent

logger = logging.getLogger(__name__)
P = Parcel.Status
W = Waybill.Status

Connect = Callable[[Store], Connector]

#: seconds one parcel waits out platform rate limits in total before it is left for a retry
RATE_LIMIT_PATIENCE = 600.0
#: longest single wait for a rate limit (WeChat's 45011 says "next minute")
RATE_LIMIT_STEP = 61.0
#: threads of one batch, and lanes per shop among them: a shop's calls overlap with ecbao's
#: database work, and the connectors' pace (per process) keeps a shop under its platform's limit
BATCH_THREADS = 12
LANES_PER_SHOP = 4

_sleep = time.sleep  # tests and benches may shorten waits


class WaybillError(Exception):
    """Taking a number failed for this parcel; the message is on ``Parcel.error`` too.
    ``retryable``: a later take may succeed (with the same key after an unknown outcome, with
    a new key after a refusal)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


# --- accounts ------------------------------------------------------------------------------------------------


def sync_accounts(store: Store, *, connector: Connector | None = None) -> int:
    """Read ``store``'s e-waybill accounts from the platform; returns how many it lists."""
    connector = connector or channel_services.connector_for(store)
    listed = connector.list_waybill_accounts()
    now = timezone.now()
    seen: list[int] = []
    with transaction.atomic():
        for a in listed:
            row, _ = WaybillAccount.objects.update_or_create(
                store=store,
                carrier=(a.carrier or a.carrier_code)[:32],
                branch_code=a.branch_code[:64],
                account_id=a.account_id[:64],
                defaults={
                    "platform_carrier_code": a.carrier_code[:32],
                    "branch_name": a.branch_name[:200],
                    "available": a.available,
                    "allocated": a.allocated,
                    "recycled": a.recycled,
                    "cancelled": a.cancelled,
                    "is_active": True,
                    "synced_at": now,
                },
            )
            seen.append(row.pk)
        WaybillAccount.objects.filter(store=store, is_active=True).exclude(pk__in=seen).update(
            is_active=False, synced_at=now
        )
    return len(set(seen))


# --- one parcel --------------------------------------------------------------------------------------------


def _tenant_tag() -> str:
    return hashlib.sha256(connection.schema_name.encode()).hexdigest()[:8]


def waybill_key(parcel_id: int, generation: int) -> str:
    """ecbao's idempotency key for a parcel's ``generation``-th take (stable; unique per tenant)."""
    return f"wb-{_tenant_tag()}-{parcel_id}-{generation}"


def _live_parcels(fulfilment_id: int) -> list[Parcel]:
    return list(
        Parcel.objects.select_for_update(of=("self",))
        .select_related("store")
        .filter(fulfilment_id=fulfilment_id)
        .exclude(status=P.CANCELLED)
        .order_by("pk")
    )


def _own_waybill(parcel_id: int) -> Waybill | None:
    """The parcel's live number: its own parent waybill, or a child number assigned to it."""
    return (
        Waybill.objects.filter(parcel_id=parcel_id)
        .filter(
            Q(parent__isnull=True, status__in=[W.REQUESTED, W.ISSUED])
            | Q(parent__isnull=False, status=W.ISSUED)
        )
        .order_by("-id")
        .first()
    )


def _recorded_choice(parcel: Parcel) -> Choice | None:
    """A carrier already recorded on the parcel (chosen earlier, or by hand) whose account is
    still active."""
    if parcel.account_id and parcel.carrier:
        account = WaybillAccount.objects.filter(pk=parcel.account_id, is_active=True).first()
        if account is not None and account.store_id == parcel.store_id:
            return Choice(parcel.carrier, account, parcel.carrier_reason)
    return None


def _sender(warehouse_id: int | None) -> ct.ShipFrom:
    """The ship-from address of the parcel's warehouse (``scope.sender_for``): a supplier's
    warehouse without an address of its own is a retryable error, never the merchant's address."""
    try:
        sender = scope.sender_for(warehouse_id)
    except scope.SenderMissing as exc:
        raise WaybillError(str(exc)) from None
    if sender is None:
        raise WaybillError(gettext("no sender address: add one under shipping settings, then retry"))
    return ct.ShipFrom(
        name=sender.name, mobile=sender.mobile, province=sender.province, city=sender.city,
        district=sender.district, street=sender.street, detail=sender.detail,
    )  # fmt: skip


@dataclass
class _Plan:
    """One platform call to make (built inside the locking transaction, made outside it)."""

    asked: int  # the parcel the caller asked for
    head: int  # the parcel the number is taken for (parcel 1 of a parent/child group)
    children: list[int]  # parcels 2..n getting child numbers
    waybill_id: int
    store: Store
    request: ct.WaybillRequest


def _parcel_orders(parcel_ids: list[int]) -> list[Order]:
    return list(
        Order.objects.filter(
            pk__in=ParcelLine.objects.filter(parcel_id__in=parcel_ids).values("order_line__order_id")
        ).order_by("pk")
    )


def _items(parcel_ids: list[int]) -> tuple[ct.WaybillItem, ...]:
    totals: dict[str, int] = defaultdict(int)
    for title, code, qty in (
        ParcelLine.objects.filter(parcel_id__in=parcel_ids)
        .order_by("id")
        .values_list("order_line__title", "order_line__merchant_code", "quantity")
    ):
        totals[(title or code or "-")[:100]] += qty
    return tuple(ct.WaybillItem(title, qty) for title, qty in totals.items())


def _prepare(parcel_id: int) -> _Plan | Waybill:
    """Lock the parcel's fulfilment, decide what to take, and commit the Waybill row (its key)
    before any platform call. Returns the existing Waybill when there is nothing to take."""
    with transaction.atomic():
        first = Parcel.objects.filter(pk=parcel_id).values_list("fulfilment_id", flat=True).first()
        if first is None:
            raise WaybillError(gettext("the parcel no longer exists"), retryable=False)
        siblings = _live_parcels(first)
        parcel = next((p for p in siblings if p.pk == parcel_id), None)
        if parcel is None:  # cancelled meanwhile
            raise WaybillError(gettext("the parcel was cancelled: nothing to take"), retryable=False)
        if parcel.status == P.SHIPPED:
            raise WaybillError(gettext("the parcel has shipped"), retryable=False)
        if parcel.manual and parcel.tracking_no:
            raise WaybillError(gettext("the parcel has a tracking number entered by hand"), retryable=False)
        facts = None
        own = _own_waybill(parcel.pk)
        if own is not None and own.status == W.ISSUED:
            _mark_numbered(parcel.pk, own)  # repairs a parcel left NEW after a crash
            return own
        unshipped = sorted((p for p in siblings if p.status != P.SHIPPED), key=lambda p: p.seq)
        head = unshipped[0]
        if own is not None:  # REQUESTED: outcome unknown, repeat the same key
            waybill = own
            head = parcel
            choice = Choice(own.carrier, own.account, parcel.carrier_reason) if own.account else None
            if choice is None:
                raise WaybillError(
                    gettext("the waybill account is gone: cancel and take again"), retryable=False
                )
        else:
            head_own = _own_waybill(head.pk) if head.pk != parcel.pk else None
            if head_own is not None and head_own.account is not None:
                choice = Choice(head_own.carrier, head_own.account, head.carrier_reason)
            else:
                try:
                    choice = _recorded_choice(head)
                    if choice is None:
                        facts = parcel_facts(head)
                        choice = choose_carrier(head, facts=facts)
                except ValidationError as exc:
                    raise WaybillError(" ".join(exc.messages)) from None
            waybill = None
        store = parcel.store
        group = len(unshipped) > 1 and carriers.child_waybills(store.platform, choice.carrier)
        if group and own is None:
            if head.pk != parcel.pk:
                head_own = _own_waybill(head.pk)
                if head_own is not None and head_own.status == W.ISSUED:
                    raise WaybillError(
                        gettext(
                            "parcel 1 has its number but no child number is left for this parcel: cancel and take again"
                        )
                    )
                waybill = head_own  # REQUESTED: resume the head's take
            target = head
        else:
            target = parcel
        children = [p.pk for p in unshipped if p.pk != target.pk] if group else []
        # One carrier per fulfilment: every unnumbered parcel of it records the choice.
        reason = choice.reason
        Parcel.objects.filter(
            pk__in=[p.pk for p in unshipped if p.status == P.NEW and not p.tracking_no]
        ).update(
            carrier=choice.carrier,
            account=choice.account,
            carrier_reason=reason[:200],
            updated_at=timezone.now(),
        )
        if waybill is None:
            generation = Waybill.objects.filter(parcel_id=target.pk, parent__isnull=True).count() + 1
            waybill = Waybill.objects.create(
                parcel_id=target.pk,
                store_id=target.store_id,
                account=choice.account,
                key=waybill_key(target.pk, generation),
                carrier=choice.carrier,
                platform_carrier_code=choice.account.platform_carrier_code,
            )
        request_parcels = [target.pk, *children]
        orders = _parcel_orders(request_parcels)
        if not orders:
            raise WaybillError(gettext("the parcel holds no order lines"), retryable=False)
        if facts is None or target.pk != head.pk:
            facts = parcel_facts(target)
        account = waybill.account or choice.account
        request = ct.WaybillRequest(
            key=waybill.key,
            carrier_code=waybill.platform_carrier_code or account.platform_carrier_code,
            platform_order_ids=tuple(dict.fromkeys(parcel_services.platform_order_id(o) for o in orders)),
            sender=_sender(facts.warehouse_id),
            items=_items(request_parcels),
            account_id=account.account_id,
            branch_code=account.branch_code,
            parcel_index=target.seq,
            parcel_count=max(target.count, 1),
            child_count=len(children),
            weight_g=facts.weight_g,
        )
        return _Plan(parcel.pk, target.pk, children, waybill.pk, store, request)


def _mark_numbered(parcel_id: int, waybill: Waybill) -> None:
    Parcel.objects.filter(pk=parcel_id, status=P.NEW).update(
        status=P.NUMBERED,
        tracking_no=waybill.tracking_no,
        carrier=waybill.carrier,
        account_id=waybill.account_id,
        error="",
        updated_at=timezone.now(),
    )


def _print_fields(result: ct.Waybill) -> dict[str, Any]:
    p = result.print_info
    return {
        "print_data": p.print_data,
        "print_sign": p.sign,
        "print_key": p.key,
        "template_url": p.template_url[:500],
        "sort_code": result.sort_code[:64],
        "short_address": result.short_address[:100],
        "package_center": result.package_center[:100],
    }


def _record_issued(plan: _Plan, result: ct.Waybill) -> Waybill | None:
    with transaction.atomic():
        waybill = Waybill.objects.select_for_update().get(pk=plan.waybill_id)
        if waybill.status == W.REQUESTED:
            waybill.status = W.ISSUED
            waybill.tracking_no = result.tracking_no
            waybill.platform_waybill_id = result.platform_waybill_id
            waybill.attempts += 1
            waybill.last_error = ""
            for name, value in _print_fields(result).items():
                setattr(waybill, name, value)
            waybill.save()
        elif waybill.status != W.ISSUED:
            return None  # cancelled or failed meanwhile: nothing to record (a cancel took it back)
        for n, child in enumerate(result.children):
            child_parcel = plan.children[n] if n < len(plan.children) else plan.head
            Waybill.objects.get_or_create(
                key=f"{waybill.key}-c{n + 1}",
                defaults={
                    "parcel_id": child_parcel,
                    "store_id": waybill.store_id,
                    "account_id": waybill.account_id,
                    "carrier": waybill.carrier,
                    "platform_carrier_code": waybill.platform_carrier_code,
                    "tracking_no": child.tracking_no,
                    "platform_waybill_id": child.platform_waybill_id,
                    "parent": waybill,
                    "status": W.ISSUED,
                    "attempts": 1,
                    **_print_fields(child),
                },
            )
        _mark_numbered(plan.head, waybill)
        if result.children:
            for child_row in waybill.children.filter(status=W.ISSUED):
                _mark_numbered(child_row.parcel_id, child_row)
        orders = _parcel_orders([plan.head, *plan.children])
        OrderEvent.objects.bulk_create(
            OrderEvent(order_id=o.pk, kind="waybill_taken", source="system",
                       message=f"{carriers.name_of(waybill.carrier)} {waybill.tracking_no}"[:500])
            for o in orders
        )  # fmt: skip
    return waybill


def _record_failure(plan: _Plan, message: str, *, refused: bool) -> None:
    with transaction.atomic():
        updates: dict[str, Any] = {
            "attempts": F("attempts") + 1,
            "last_error": message[:300],
            "updated_at": timezone.now(),
        }
        if refused:
            updates["status"] = W.FAILED
        Waybill.objects.filter(pk=plan.waybill_id, status=W.REQUESTED).update(**updates)
        Parcel.objects.filter(pk__in={plan.asked, plan.head, *plan.children}, status=P.NEW).update(
            error=message[:300], updated_at=timezone.now()
        )


def take_for_parcel(parcel: Parcel | int, *, connect: Connect | None = None, warehouse=None) -> Waybill:
    """Take (or find) the parcel's number; see the module docstring. Raises WaybillError (its
    message also on ``Parcel.error``) when no number could be had now; ValidationError when
    ``warehouse`` is given and the parcel does not ship from it (``logistics.scope``)."""
    parcel_id = parcel if isinstance(parcel, int) else parcel.pk
    scope.check_parcels([parcel_id], warehouse)
    try:
        plan = _prepare(parcel_id)
    except WaybillError as exc:
        Parcel.objects.filter(pk=parcel_id, status=P.NEW).update(
            error=exc.message[:300], updated_at=timezone.now()
        )
        raise
    if isinstance(plan, Waybill):
        return plan
    connector = (connect or channel_services.connector_for)(plan.store)
    waited = 0.0
    while True:
        try:
            result = connector.take_waybill(plan.request)
            break
        except RateLimited as exc:
            if waited >= RATE_LIMIT_PATIENCE:
                message = gettext(
                    "the platform kept limiting the call rate: retry later (the same number comes back)"
                )
                _record_failure(plan, message, refused=False)
                raise WaybillError(message) from exc
            pause = min(max(exc.retry_after, 0.5), RATE_LIMIT_STEP, RATE_LIMIT_PATIENCE - waited + 0.5)
            logger.info("waybill %s: rate limited (%s), waiting %.1fs", plan.request.key, exc, pause)
            _sleep(pause)
            waited += pause
        except PlatformRejected as exc:
            message = gettext("the platform refused the waybill: %(error)s") % {"error": exc}
            _record_failure(plan, message, refused=True)
            raise WaybillError(message) from exc
        except ValueError as exc:  # the connector refused the request itself
            message = gettext("the platform refused the waybill: %(error)s") % {"error": exc}
            _record_failure(plan, message, refused=True)
            raise WaybillError(message, retryable=False) from exc
        except AuthExpired as exc:
            message = gettext("the shop's authorisation expired: connect it again, then retry")
            _record_failure(plan, message, refused=False)
            raise WaybillError(message) from exc
        except ChannelError as exc:
            message = gettext(
                "no answer from the platform (%(error)s): retry, the same number comes back"
            ) % {"error": exc}
            _record_failure(plan, message, refused=False)
            raise WaybillError(message) from exc
    issued = _record_issued(plan, result)
    if issued is not None and plan.asked == plan.head:
        return issued
    found = _own_waybill(plan.asked)
    if found is None or found.status != W.ISSUED:
        raise WaybillError(gettext("no number was assigned to this parcel"))
    return found


# --- batches ------------------------------------------------------------------------------------------------


def start_take(parcel_ids: Iterable[int], *, actor=None, warehouse=None) -> ShipBatch:
    """Queue taking numbers for ``parcel_ids`` (a Celery task runs the batch). A retry is a new
    batch of the failed ids. ``warehouse``: every parcel must ship from it (``logistics.scope``)."""
    ids = sorted(scope.check_parcels(parcel_ids, warehouse))
    if not ids:
        raise ValidationError(gettext("choose at least one parcel"))
    with transaction.atomic():
        batch = ShipBatch.objects.create(
            kind=ShipBatch.Kind.TAKE_WAYBILLS,
            total=len(ids),
            params={"parcel_ids": ids, **scope.batch_params(warehouse)},
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        Parcel.objects.filter(pk__in=ids).update(batch=batch)
        from logistics import tasks

        transaction.on_commit(lambda: tasks.take_waybills_task.delay(batch.pk))
    return batch


def start_take_tab(*, store_id: int | None = None, actor=None, warehouse=None) -> ShipBatch:
    """Take numbers for every parcel of the 待打单 tab that has none yet (one shop, or all) — of
    the own warehouses (``warehouse=None``: never a supplier's parcels) or of ``warehouse``."""
    parcel_services.ensure_parcels()
    ids = list(
        selectors.tab_parcels(selectors.TO_PRINT, store_id=store_id, warehouse=warehouse)
        .filter(status=P.NEW, tracking_no="")
        .values_list("pk", flat=True)
    )
    return start_take(ids, actor=actor, warehouse=warehouse)


def _count(batch_id: int, field: str) -> None:
    ShipBatch.objects.filter(pk=batch_id).update(**{field: F(field) + 1})


def _take_many(schema: str, batch_id: int, parcel_ids: list[int], connect: Connect) -> None:
    """One shop's parcels of a batch, in order, with one connector (its caches and pace)."""
    connectors: dict[int, Connector] = {}

    def cached(store: Store) -> Connector:
        if store.pk not in connectors:
            connectors[store.pk] = connect(store)
        return connectors[store.pk]

    with schema_context(schema):
        try:
            for parcel_id in parcel_ids:
                try:
                    take_for_parcel(parcel_id, connect=cached)
                except WaybillError:
                    _count(batch_id, "failed")
                except Exception as exc:  # keep going: one parcel's bug must not stop the batch
                    logger.exception("waybill batch %s: parcel %s failed", batch_id, parcel_id)
                    message = gettext("unexpected error: %(error)s") % {"error": type(exc).__name__}
                    Parcel.objects.filter(pk=parcel_id, status=P.NEW).update(error=message[:300])
                    _count(batch_id, "failed")
                else:
                    _count(batch_id, "done")
        finally:
            for c in connectors.values():
                c.http.close()
            if threading.current_thread() is not threading.main_thread():
                connection.close()  # this thread's own connection


def lanes(rows: dict[int, tuple[int, int, int]], *, per_shop: int) -> list[list[int]]:
    """Parcel ids ``{pk: (store, fulfilment, seq)}`` in lanes taken side by side: up to
    ``per_shop`` lanes per shop; a fulfilment's parcels stay in one lane, in seq order (parcel
    1 takes a parent/child group's numbers)."""
    by_store: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for pk, (store, fulfilment, _seq) in sorted(rows.items(), key=lambda r: (r[1][1], r[1][2], r[0])):
        by_store[store][fulfilment].append(pk)
    out: list[list[int]] = []
    for fulfilments in by_store.values():
        shop_lanes: list[list[int]] = [[] for _ in range(max(1, min(per_shop, len(fulfilments))))]
        for n, pks in enumerate(fulfilments.values()):
            shop_lanes[n % len(shop_lanes)].extend(pks)
        out.extend(shop_lanes)
    return out


def run_take_batch(
    batch_id: int,
    *,
    connect: Connect | None = None,
    threads: int = BATCH_THREADS,
    lanes_per_shop: int = LANES_PER_SHOP,
) -> ShipBatch:
    """Run a batch (the task calls this; running it again after a crash is safe: parcels with
    a number count as done at once, an unknown outcome is repeated with its key)."""
    connect = connect or channel_services.connector_for
    batch = ShipBatch.objects.get(pk=batch_id)
    if batch.status == ShipBatch.Status.DONE:
        return batch
    ids = [int(i) for i in batch.params.get("parcel_ids", [])]
    ShipBatch.objects.filter(pk=batch_id).update(status=ShipBatch.Status.RUNNING, done=0, failed=0, error="")
    rows = {pk: (store, fulfilment, seq) for pk, store, fulfilment, seq in Parcel.objects.filter(
        pk__in=ids).values_list("pk", "store_id", "fulfilment_id", "seq")}  # fmt: skip
    for pk in ids:
        if pk not in rows:
            _count(batch_id, "failed")
    groups = lanes(rows, per_shop=lanes_per_shop)
    schema = connection.schema_name
    try:
        if len(groups) <= 1 or threads <= 1:
            for pks in groups:
                _take_many(schema, batch_id, pks, connect)
        else:
            workers = []
            pending = list(groups)
            lock = threading.Lock()

            def work() -> None:
                while True:
                    with lock:
                        if not pending:
                            return
                        pks = pending.pop(0)
                    _take_many(schema, batch_id, pks, connect)

            for _ in range(min(threads, len(groups))):
                worker = threading.Thread(target=work, daemon=True)
                worker.start()
                workers.append(worker)
            for worker in workers:
                worker.join()
    except Exception as exc:
        ShipBatch.objects.filter(pk=batch_id).update(
            status=ShipBatch.Status.FAILED, error=str(exc)[:300], finished_at=timezone.now()
        )
        raise
    _refresh_balances({store for store, _f, _s in rows.values()}, connect)
    # The running counts may overcount failures: parcel 1 of a multi-piece group can fail with an
    # unknown outcome and then get its number when parcel 2 repeats the group's take with the same
    # key. The batch ends with the parcels' own state.
    known_ids = list(rows)
    left = Parcel.objects.filter(pk__in=known_ids, status=P.NEW).count()
    ShipBatch.objects.filter(pk=batch_id).update(
        status=ShipBatch.Status.DONE,
        finished_at=timezone.now(),
        done=len(known_ids) - left,
        failed=left + len(ids) - len(known_ids),
    )
    return ShipBatch.objects.get(pk=batch_id)


def _refresh_balances(store_ids: set[int], connect: Connect) -> None:
    """After a batch, the shops' account balances are read again (the carrier choice prefers
    accounts with numbers left); a failure here only leaves the old balances."""
    for store in Store.objects.filter(pk__in=store_ids):
        try:
            connector = connect(store)
            try:
                sync_accounts(store, connector=connector)
            finally:
                connector.http.close()
        except ChannelError as exc:
            logger.warning("waybill accounts of store %s not refreshed: %s", store.pk, exc)


def batch_progress(batch: ShipBatch | int) -> dict[str, Any]:
    """For the page's progress poll: counts, state and the parcels still without a number with
    their errors."""
    batch = batch if isinstance(batch, ShipBatch) else ShipBatch.objects.get(pk=batch)
    return selectors.batch_progress(batch, Parcel.objects.filter(batch=batch, status=P.NEW))


# --- cancel and recycle -------------------------------------------------------------------------------------


def cancel_parcel_waybill(
    parcel: Parcel | int, *, actor=None, reason: str = "", connect: Connect | None = None, warehouse=None
) -> None:
    """Cancel the parcel's unused number at the platform (recycled to the account) and put the
    parcel back to NEW (a cancelled parcel stays cancelled; its number is recycled). Refused
    once the parcel shipped. A parent/child group is cancelled as a whole. ``warehouse``: the
    parcel must ship from it (``logistics.scope``)."""
    parcel_id = parcel if isinstance(parcel, int) else parcel.pk
    scope.check_parcels([parcel_id], warehouse)
    with transaction.atomic():
        parcel = Parcel.objects.select_for_update().select_related("store").get(pk=parcel_id)
        if parcel.status == P.SHIPPED:
            raise ValidationError(gettext("the parcel has shipped: its waybill number cannot be cancelled"))
        own = _own_waybill(parcel.pk)
        if own is None:
            raise ValidationError(gettext("the parcel has no waybill number to cancel"))
        root = own.parent if own.parent_id else own
        group = {root.parcel_id, *root.children.values_list("parcel_id", flat=True)}
        if Parcel.objects.filter(pk__in=group, status=P.SHIPPED).exists():
            raise ValidationError(
                gettext("a parcel of this multi-piece waybill has shipped: it cannot be cancelled")
            )
    connector = (connect or channel_services.connector_for)(parcel.store)
    if root.status == W.REQUESTED:
        # The outcome of the take is unknown: ask again with the same key to learn the number.
        plan = _prepare(root.parcel_id)
        if isinstance(plan, _Plan):
            try:
                result = connector.take_waybill(plan.request)
            except PlatformRejected as exc:
                _record_failure(plan, str(exc), refused=True)
                result = None
            except ChannelError as exc:
                raise ValidationError(
                    gettext("no answer from the platform (%(error)s): try again") % {"error": exc}
                ) from exc
            if result is not None:
                _record_issued(plan, result)
        root.refresh_from_db()
    if root.status == W.ISSUED:
        try:
            connector.cancel_waybill(
                carrier_code=root.platform_carrier_code, tracking_no=root.tracking_no,
                platform_waybill_id=root.platform_waybill_id,
            )  # fmt: skip
        except PlatformRejected as exc:
            raise ValidationError(
                gettext("the platform refused to cancel: %(error)s") % {"error": exc}
            ) from exc
        except ChannelError as exc:
            raise ValidationError(
                gettext("no answer from the platform (%(error)s): try again") % {"error": exc}
            ) from exc
    with transaction.atomic():
        rows = [root.pk, *root.children.values_list("pk", flat=True)]
        Waybill.objects.filter(pk__in=rows, status__in=[W.REQUESTED, W.ISSUED]).update(
            status=W.CANCELLED, updated_at=timezone.now()
        )
        now = timezone.now()
        back = Parcel.objects.filter(pk__in=group).exclude(status__in=[P.SHIPPED, P.CANCELLED])
        orders = _parcel_orders(list(group))
        back.update(
            status=P.NEW, tracking_no="", carrier="", account=None, carrier_reason="", print_count=0,
            printed_at=None, verified_at=None, verified_by=None, error="", updated_at=now,
        )  # fmt: skip
        Parcel.objects.filter(pk__in=group, status=P.CANCELLED).update(
            error=gettext("waybill number recycled"), updated_at=now
        )
        message = gettext("waybill %(no)s cancelled and recycled") % {"no": root.tracking_no or root.key}
        if reason:
            message = f"{message}: {reason}"
        OrderEvent.objects.bulk_create(
            OrderEvent(order_id=o.pk, kind="waybill_cancelled", source="user" if actor else "system",
                       actor=actor if getattr(actor, "pk", None) else None, message=message[:500])
            for o in orders
        )  # fmt: skip


def assign_carrier(parcel_ids: Iterable[int], *, account: WaybillAccount, actor=None, warehouse=None) -> int:
    """Choose the carrier by hand for parcels without a number (same shop as the account)."""
    updated = Parcel.objects.filter(
        pk__in=scope.check_parcels(parcel_ids, warehouse),
        status=P.NEW,
        tracking_no="",
        store_id=account.store_id,
    ).update(
        carrier=account.carrier,
        account=account,
        carrier_reason=gettext("chosen by hand"),
        updated_at=timezone.now(),
    )
    return updated
