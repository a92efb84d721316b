"""The buyer simulator: shoppers (and the platform's own timers) that keep the world moving.

Per shop, orders arrive as a Poisson process at ``orders_per_minute``. Each order
gets realistic variety: one or several lines, gifts, discounts, freight, buyer
remarks, a receiver other than the buyer, stock reduced at order or at payment,
and a payment plan (pay at once, pay later, never pay → timeout, cancel).

The simulator also *reacts* to every world event, whoever caused it (itself or
an ERP calling the platform APIs): a paid order may get an address change or a
refund request; a shipped order is received days later, sometimes after a
partial refund, a return or an exchange; received orders complete and settle;
after-sale deadlines are enforced as the platform would (auto-agree, auto-close).
With ``merchant_bot=True`` it also plays the merchant (ships, answers
after-sales) so a demo world evolves with no ERP attached.

Reactions are stored in the world's agenda table, so they survive a restart.
Nominal delays are divided by ``world.time_compression``.

Drive it synchronously (``step(n)``, ``run_for(seconds)`` with a ``FakeClock``),
or in real time (``tick()`` / ``start()``).
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass

from . import dropship, untidy
from .clock import is_advanceable
from .model import AfterSaleStatus, AfterSaleType, EventKind, Order, OrderStatus
from .seed import BUYER_REMARKS, random_receiver
from .world import CARRIERS, OrderItemSpec, ShipmentSpec, World, WorldError

log = logging.getLogger("sandbox.simulator")

MINUTE, HOUR, DAY = 60, 3600, 86400


@dataclass
class SimConfig:
    """Behaviour knobs. Probabilities are per order (or per shipped order / after-sale)."""

    orders_per_minute: float = 2.0  # per shop, real time
    p_multi_line: float = 0.3
    p_gift: float = 0.1
    p_discount: float = 0.25
    p_freight: float = 0.2
    p_remark: float = 0.2
    p_other_receiver: float = 0.15
    p_reduce_at_pay: float = 0.3
    p_pay_later: float = 0.10
    p_never_pay: float = 0.05
    p_cancel_unpaid: float = 0.03
    p_address_change: float = 0.05
    p_refund_before_ship: float = 0.04
    p_aftersale_after_ship: float = 0.10
    p_withdraw_aftersale: float = 0.10
    merchant_bot: bool = False
    merchant_ship_delay: float = 4 * HOUR  # nominal
    merchant_reject_rate: float = 0.1


class BuyerSimulator:
    """See the module docstring."""

    def __init__(
        self, world: World, *, seed: int = 0, config: SimConfig | None = None, shops: list[str] | None = None
    ) -> None:
        self.world = world
        self.config = config or SimConfig()
        self.rng = random.Random(seed)
        self.shop_ids = shops if shops is not None else [s.shop_id for s in world.shops()]
        self._next_arrival: dict[str, float] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.placed = 0
        now = world.clock.now()
        for shop_id in self.shop_ids:
            self._next_arrival[shop_id] = now + self._interarrival()
        if not self.world.meta_get("sim_cursor"):
            self.world.meta_set("sim_cursor", str(self.world.last_event_id()))

    # ------------------------------------------------------------------ timing helpers

    def _interarrival(self) -> float:
        rate = self.config.orders_per_minute / 60.0
        return self.rng.expovariate(rate) if rate > 0 else float("inf")

    def _later(self, low: float, high: float) -> float:
        """A due time ``uniform(low, high)`` nominal seconds from now, compressed."""
        return self.world.clock.now() + self.rng.uniform(low, high) / self.world.time_compression

    def _schedule(self, due: float, action: str, ref: str, **args: object) -> None:
        self.world.agenda_add(due, action, ref, dict(args))

    # ------------------------------------------------------------------ driving

    def _next_event(self) -> tuple[float, str, str] | None:
        """(time, kind, ref) of the next arrival or agenda item."""
        candidates: list[tuple[float, str, str]] = []
        if self._next_arrival:
            shop_id = min(self._next_arrival, key=lambda s: self._next_arrival[s])
            if self._next_arrival[shop_id] != float("inf"):
                candidates.append((self._next_arrival[shop_id], "arrival", shop_id))
        due = self.world.agenda_next_due()
        if due is not None:
            candidates.append((due, "agenda", ""))
        return min(candidates) if candidates else None

    def step(self, n: int = 1) -> int:
        """Perform the next ``n`` simulated events (arrivals or scheduled actions).

        With an advanceable clock, time jumps to each event; with a real clock the
        events are performed now. Returns how many were performed.
        """
        done = 0
        with self._lock:
            self.react()
            while done < n:
                nxt = self._next_event()
                if nxt is None:
                    break
                self._perform(nxt)
                done += 1
                self.react()
        return done

    def run_for(self, seconds: float) -> int:
        """Advance a ``FakeClock`` by ``seconds``, performing everything due on the way."""
        if not is_advanceable(self.world.clock):
            raise TypeError(
                "run_for needs an advanceable clock (FakeClock); use tick() or start() in real time"
            )
        end = self.world.clock.now() + seconds
        done = 0
        with self._lock:
            self.react()
            while True:
                nxt = self._next_event()
                if nxt is None or nxt[0] > end:
                    break
                self._perform(nxt)
                done += 1
                self.react()
            if self.world.clock.now() < end:
                self.world.clock.set(end)  # type: ignore[attr-defined]
        return done

    def tick(self, limit: int = 500) -> int:
        """Real-time mode: perform everything due at ``clock.now()`` (at most ``limit``)."""
        done = 0
        with self._lock:
            self.react()
            now = self.world.clock.now()
            while done < limit:
                nxt = self._next_event()
                if nxt is None or nxt[0] > now:
                    break
                self._perform(nxt)
                done += 1
                self.react()
        return done

    def _perform(self, nxt: tuple[float, str, str]) -> None:
        when, kind, ref = nxt
        clock = self.world.clock
        if is_advanceable(clock) and when > clock.now():
            clock.set(when)  # type: ignore[attr-defined]
        if kind == "arrival":
            self._next_arrival[ref] = max(when, clock.now()) + self._interarrival()
            self.place_random_order(ref)
            return
        for _, action, item_ref, args in self.world.agenda_take(when, 1):
            try:
                getattr(self, f"_do_{action}")(item_ref, **args)
            except WorldError as exc:  # the world moved on (e.g. the ERP acted first)
                log.debug("simulator action %s(%s) skipped: %s", action, item_ref, exc)

    # ------------------------------------------------------------------ background thread

    def start(self, interval: float = 0.2) -> None:
        """Run ``tick()`` in a daemon thread (real clock) until ``stop()``."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    performed = self.tick()
                except Exception:  # keep simulating; log the surprise
                    log.exception("simulator tick failed")
                    performed = 0
                if not performed:
                    self._stop.wait(interval)

        self._thread = threading.Thread(target=loop, name="sandbox-buyer-simulator", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # ------------------------------------------------------------------ orders

    def place_random_order(self, shop_id: str) -> Order | None:
        """One buyer places one order in ``shop_id`` with random variety (None if nothing is in stock)."""
        cfg, rng, world = self.config, self.rng, self.world
        skus = [s for s in world.skus(shop_id) if s.stock > 0]
        if not skus or world.buyer_count() == 0:
            return None
        lines = 1 + (rng.choice((1, 1, 2)) if rng.random() < cfg.p_multi_line else 0)
        chosen = rng.sample(skus, min(lines, len(skus)))
        items = []
        for sku in chosen:
            qty = min(sku.stock, 1 if rng.random() < 0.8 else rng.choice((2, 3)))
            discount = (
                int(sku.price_fen * qty * rng.uniform(0.05, 0.2)) if rng.random() < cfg.p_discount else 0
            )
            items.append(OrderItemSpec(sku.sku_id, qty, discount))
        if rng.random() < cfg.p_gift:
            gift = min(skus, key=lambda s: s.price_fen)
            if gift.sku_id not in {i.sku_id for i in items} and gift.stock > 0:
                items.append(OrderItemSpec(gift.sku_id, 1, gift_of=0))
        buyer_id = rng.randrange(1, world.buyer_count() + 1)
        receiver = random_receiver(rng) if rng.random() < cfg.p_other_receiver else None
        try:
            order = world.create_order(
                shop_id=shop_id,
                buyer_id=buyer_id,
                items=items,
                receiver=receiver,
                buyer_words=rng.choice(BUYER_REMARKS) if rng.random() < cfg.p_remark else "",
                post_fen=rng.choice((500, 800, 1000)) if rng.random() < cfg.p_freight else 0,
                stock_reduce="pay" if rng.random() < cfg.p_reduce_at_pay else "order",
            )
        except WorldError as exc:
            log.debug("order not placed: %s", exc)
            return None
        self.placed += 1
        r = rng.random()
        if r < cfg.p_cancel_unpaid:
            self._schedule(self._later(1 * MINUTE, 10 * MINUTE), "buyer_cancel", order.order_id)
        elif r < cfg.p_cancel_unpaid + cfg.p_never_pay:
            pass  # the platform's payment timeout will close it
        elif r < cfg.p_cancel_unpaid + cfg.p_never_pay + cfg.p_pay_later:
            self._schedule(self._later(2 * MINUTE, 25 * MINUTE), "pay", order.order_id)
        else:
            self._schedule(self._later(3, 60), "pay", order.order_id)
        return order

    # ------------------------------------------------------------------ reactions to events

    def react(self) -> int:
        """Turn new world events into scheduled reactions; returns how many events were read."""
        cursor = int(self.world.meta_get("sim_cursor", "0") or 0)
        events = self.world.events_after(cursor, 5000)
        if not events:
            return 0
        cfg, rng = self.config, self.rng
        for event in events:
            kind, ref = event.kind, event.order_id
            order = event.data.get("order") or {}
            if kind == EventKind.ORDER_CREATED and order.get("status") == OrderStatus.UNPAID:
                self._schedule(order["expire_time"], "expire", ref)
            elif kind == EventKind.ORDER_PAID:
                if rng.random() < cfg.p_address_change:
                    self._schedule(self._later(1 * MINUTE, 1 * HOUR), "change_address", ref)
                if rng.random() < cfg.p_refund_before_ship:
                    self._schedule(self._later(1 * MINUTE, 1 * HOUR), "refund_before_ship", ref)
                if cfg.merchant_bot:
                    self._schedule(
                        self._later(cfg.merchant_ship_delay * 0.5, cfg.merchant_ship_delay * 1.5),
                        "merchant_ship",
                        ref,
                    )
            elif kind == EventKind.ORDER_SHIPPED:
                self._schedule(self._later(1 * DAY, 4 * DAY), "receive", ref)
                self._schedule(event.time + self.world.timer("auto_receive"), "receive", ref)
                if rng.random() < cfg.p_aftersale_after_ship:
                    self._schedule(self._later(1 * HOUR, 2 * DAY), "aftersale_after_ship", ref)
            elif kind == EventKind.ORDER_RECEIVED:
                self._schedule(event.time + self.world.timer("settle_after_receive"), "complete", ref)
            elif kind == EventKind.AFTERSALE_CREATED:
                a = event.data["aftersale"]
                self._schedule(a["deadline"], "aftersale_deadline", a["aftersale_id"], status=a["status"])
                if rng.random() < cfg.p_withdraw_aftersale:
                    self._schedule(self._later(10 * MINUTE, 1 * DAY), "withdraw", a["aftersale_id"])
                if cfg.merchant_bot:
                    self._schedule(self._later(10 * MINUTE, 6 * HOUR), "merchant_answer", a["aftersale_id"])
            elif kind == EventKind.AFTERSALE_RETURN_AGREED:
                a = event.data["aftersale"]
                self._schedule(self._later(2 * HOUR, 2 * DAY), "buyer_return", a["aftersale_id"])
                self._schedule(a["deadline"], "aftersale_deadline", a["aftersale_id"], status=a["status"])
            elif kind == EventKind.AFTERSALE_BUYER_RETURNED:
                a = event.data["aftersale"]
                self._schedule(a["deadline"], "aftersale_deadline", a["aftersale_id"], status=a["status"])
                if cfg.merchant_bot:
                    self._schedule(self._later(1 * HOUR, 1 * DAY), "merchant_answer", a["aftersale_id"])
            elif kind == EventKind.AFTERSALE_EXCHANGE_SHIPPED:
                a = event.data["aftersale"]
                self._schedule(self._later(1 * DAY, 3 * DAY), "exchange_receive", a["aftersale_id"])
            elif kind == EventKind.DROPSHIP_ASSIGNED:  # the supplier / factory ships it later
                ds = event.data["dropship"]
                self._schedule(ds["ship_due"], "dropship_ship", ds["ds_id"])
        self.world.meta_set("sim_cursor", str(events[-1].event_id))
        return len(events)

    # ------------------------------------------------------------------ actions (buyer and platform)

    def _do_pay(self, order_id: str) -> None:
        order = self.world.get_order(order_id)
        if order and order.status == OrderStatus.UNPAID and self.world.now() < order.expire_time:
            self.world.pay_order(order_id)

    def _do_expire(self, order_id: str) -> None:
        order = self.world.get_order(order_id)
        if order and order.status == OrderStatus.UNPAID:
            self.world.cancel_order(order_id, reason="超时未支付", kind="unpaid_timeout")

    def _do_buyer_cancel(self, order_id: str) -> None:
        order = self.world.get_order(order_id)
        if order and order.status == OrderStatus.UNPAID:
            self.world.cancel_order(
                order_id, reason=self.rng.choice(["不想要了", "拍错了", "地址填写错误"]), kind="buyer"
            )

    def _do_change_address(self, order_id: str) -> None:
        receiver = random_receiver(self.rng)
        order = self.world.get_order(order_id)
        if order is not None and untidy.hit(self.world, "world.same_address_change", order_id):
            receiver = order.receiver  # re-saved unchanged: a new ciphertext, the same receiver
        self.world.change_address(order_id, receiver)

    def _do_refund_before_ship(self, order_id: str) -> None:
        order = self.world.get_order(order_id)
        if order is None:
            return
        lines = [
            ln for ln in order.lines if not ln.shipped_qty and not ln.aftersale_status and not ln.is_gift
        ]
        if not lines:
            return
        # Half of the multi-line cases refund only one line (a partial refund).
        targets = [self.rng.choice(lines)] if len(lines) > 1 and self.rng.random() < 0.5 else lines
        for line in targets:
            self.world.apply_aftersale(order_id, line.line_id, kind=AfterSaleType.REFUND_UNSHIPPED,
                                       reason=self.rng.choice(["不想要了", "拍错/多拍", "协商一致退款"]))  # fmt: skip

    def _do_aftersale_after_ship(self, order_id: str) -> None:
        order = self.world.get_order(order_id)
        if order is None:
            return
        lines = [
            ln
            for ln in order.lines
            if ln.shipped_qty and not (ln.aftersale_status and AfterSaleStatus(ln.aftersale_status).is_open)
        ]
        lines = [ln for ln in lines if ln.qty > ln.refunded_qty]
        if not lines:
            return
        line = self.rng.choice(lines)
        kind = self.rng.choices(
            [AfterSaleType.REFUND_SHIPPED, AfterSaleType.RETURN_REFUND, AfterSaleType.EXCHANGE],
            weights=[4, 4, 2],
        )[0]
        left = line.qty - line.refunded_qty
        qty = self.rng.randint(1, left) if left > 1 and self.rng.random() < 0.5 else left
        reasons = {
            AfterSaleType.REFUND_SHIPPED: "商品破损/少件",
            AfterSaleType.RETURN_REFUND: "七天无理由退货",
            AfterSaleType.EXCHANGE: "尺码不合适",
        }
        self.world.apply_aftersale(
            order_id, line.line_id, kind=kind, qty=qty, reason=reasons[kind], reason_code=1
        )

    def _do_receive(self, order_id: str) -> None:
        order = self.world.get_order(order_id)
        if order and order.status == OrderStatus.SHIPPED:
            self.world.receive_order(order_id)

    def _do_complete(self, order_id: str) -> None:
        order = self.world.get_order(order_id)
        if order is None or order.status != OrderStatus.RECEIVED:
            return
        if any(ln.aftersale_status and AfterSaleStatus(ln.aftersale_status).is_open for ln in order.lines):
            self._schedule(self._later(1 * DAY, 2 * DAY), "complete", order_id)  # try again later
            return
        self.world.complete_order(order_id)

    def _do_withdraw(self, aftersale_id: str) -> None:
        a = self.world.get_aftersale(aftersale_id)
        if a and a.status in (AfterSaleStatus.WAIT_SELLER_AGREE, AfterSaleStatus.WAIT_BUYER_RETURN):
            self.world.close_aftersale(aftersale_id, "买家撤销申请")

    def _do_buyer_return(self, aftersale_id: str) -> None:
        a = self.world.get_aftersale(aftersale_id)
        if a and a.status == AfterSaleStatus.WAIT_BUYER_RETURN:
            carrier = self.rng.choice(["ZTO", "YTO", "YD", "SF", "JT"])
            self.world.buyer_return_goods(
                aftersale_id, carrier=carrier, tracking_no=self.world.new_tracking_no(carrier)
            )

    def _do_exchange_receive(self, aftersale_id: str) -> None:
        a = self.world.get_aftersale(aftersale_id)
        if a and a.status == AfterSaleStatus.WAIT_BUYER_RECEIVE:
            self.world.buyer_receive_exchange(aftersale_id)

    def _do_aftersale_deadline(self, aftersale_id: str, status: str = "") -> None:
        """The platform enforces a deadline if the after-sale is still in the same state."""
        a = self.world.get_aftersale(aftersale_id)
        if a is None or a.status != status or self.world.now() < a.deadline:
            return
        if a.status == AfterSaleStatus.WAIT_SELLER_AGREE:
            self.world.agree_aftersale(aftersale_id)  # merchant did not answer: auto-agree
        elif a.status == AfterSaleStatus.WAIT_BUYER_RETURN:
            self.world.close_aftersale(aftersale_id, "买家超时未退货")
        elif a.status == AfterSaleStatus.WAIT_SELLER_CONFIRM:
            if a.type == AfterSaleType.RETURN_REFUND:
                self.world.agree_aftersale(aftersale_id)  # auto refund after the return arrived
            else:
                self.world.close_aftersale(aftersale_id, "商家超时未处理换货")

    # ------------------------------------------------------------------ the merchant bot (demo only)

    def _do_dropship_ship(self, ds_id: str) -> None:
        dropship.supplier_ship(self.world, ds_id)

    def _do_merchant_ship(self, order_id: str) -> None:
        order = self.world.get_order(order_id)
        if order is None or order.status not in (OrderStatus.PAID, OrderStatus.PART_SHIPPED):
            return
        carrier = self.rng.choice(["ZTO", "YTO", "SF"])
        try:
            self.world.ship_order(order_id, [ShipmentSpec(carrier, self.world.new_tracking_no(carrier))])
        except WorldError:
            self._schedule(self._later(1 * HOUR, 3 * HOUR), "merchant_ship", order_id)  # a refund is pending
            return
        for line in order.lines:  # the merchant restocks what runs low
            sku = self.world.get_sku(line.sku_id)
            if sku is not None and sku.stock < 10:
                self.world.adjust_stock(sku.sku_id, self.rng.randrange(100, 300))

    def _do_merchant_answer(self, aftersale_id: str) -> None:
        a = self.world.get_aftersale(aftersale_id)
        if a is None or not AfterSaleStatus(a.status).is_open:
            return
        if a.status == AfterSaleStatus.WAIT_SELLER_CONFIRM and a.type == AfterSaleType.EXCHANGE:
            carrier = self.rng.choice(list(CARRIERS)[:3])
            self.world.reship_exchange(
                aftersale_id, carrier=carrier, tracking_no=self.world.new_tracking_no(carrier)
            )
        elif a.status in (AfterSaleStatus.WAIT_SELLER_AGREE, AfterSaleStatus.WAIT_SELLER_CONFIRM):
            if self.rng.random() < self.config.merchant_reject_rate:
                self.world.reject_aftersale(aftersale_id, "商品已影响二次销售")
            else:
                self.world.agree_aftersale(aftersale_id)
