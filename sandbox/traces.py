"""Parcels on their way: carrier traces (物流轨迹) that move along on the sandbox clock.

Every package an order ships with (``World.ship_order``, a corrected number, an appended
parcel) gets a **trace**: a deterministic journey computed from the world seed and the
tracking number — collected (揽收) → in transit through two hubs → out for delivery (派送)
→ delivered (签收). Some parcels meet trouble on the way (``exception_rate``, default 7 %):
most get an exception (问题件: address unclear, held at the station) and are delivered late,
one in four is refused and returned to the sender (退回). Nominal durations (hours) are
divided by the world's ``time_compression``, like every platform timer.

What a platform serves is the part of the journey whose time has come (``nodes``); the
platform modules render it in their own shapes (``/logistics/trackNoRouteDetail``,
``open.logistics.trace.query``, ``/channels/ec/logistics/path/get``) and WeChat pushes each
new node (``advance``, run by the push dispatcher before each delivery round).

Tests and the CLI move parcels without waiting: ``fast_forward`` runs the parcels' own clock
ahead (their node times never change, so a node read twice is the same node); ``incident``
puts an exception (or a refusal and return) on a parcel at its present moment. Nothing here
is random: the same seed gives the same journeys.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .world import World

COLLECTED, IN_TRANSIT, DELIVERING, DELIVERED = "collected", "in_transit", "delivering", "delivered"
EXCEPTION, RETURNED = "exception", "returned"
STATUSES = (COLLECTED, IN_TRANSIT, DELIVERING, DELIVERED, EXCEPTION, RETURNED)
FINAL = frozenset({DELIVERED, RETURNED})

EXCEPTION_RATE_SETTING = "trace_exception_rate"
DEFAULT_EXCEPTION_RATE = 0.07
# Platforms that push logistics changes (WeChat's express-path event); the others are pulled only.
PUSH_PLATFORMS = frozenset({"wechat"})

# Origin hubs (the shops' warehouses are around Hangzhou, Yiwu and Guangzhou in the seed).
ORIGINS = (("浙江省", "杭州市", "余杭区"), ("浙江省", "金华市", "义乌市"), ("广东省", "广州市", "白云区"))

COURIERS = ("王师傅", "李师傅", "张师傅", "刘师傅", "陈师傅")


@dataclass(frozen=True)
class TraceNode:
    time: int  # Unix seconds
    status: str  # one of STATUSES
    text: str  # the carrier's words
    city: str = ""
    site: str = ""  # station / hub name


def _fraction(*parts: Any) -> float:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def plan(
    *,
    seed: int,
    tracking_no: str,
    carrier_name: str,
    start: float,
    dest_province: str,
    dest_city: str,
    compression: float,
    exception_rate: float,
) -> list[TraceNode]:
    """The whole journey of one parcel (future nodes included), oldest first."""

    def f(name: str) -> float:
        return _fraction(seed, "trace", tracking_no, name)

    def at(hours: float) -> int:
        return int(start + hours * 3600 / max(compression, 1e-9))

    o_province, o_city, o_district = ORIGINS[int(f("origin") * len(ORIGINS))]
    dest_city = dest_city or dest_province or "目的地"
    courier = COURIERS[int(f("courier") * len(COURIERS))]
    hub_o, hub_d = f"{o_city[:-1]}转运中心", f"{dest_city.rstrip('市')}转运中心"
    station = f"{dest_city}{'东西南北'[int(f('station') * 4)]}区营业部"
    t = [
        1 + 2 * f("t1"),
        4 + 2 * f("t2"),
        8 + 4 * f("t3"),
        20 + 10 * f("t4"),
        30 + 6 * f("t5"),
        34 + 10 * f("t6"),
    ]
    nodes = [
        TraceNode(
            at(t[0]),
            COLLECTED,
            f"【{o_city}】{carrier_name}{o_district}网点 已揽收",
            o_city,
            f"{o_district}网点",
        ),
        TraceNode(at(t[1]), IN_TRANSIT, f"【{o_city}】快件已发往 {hub_o}", o_city, f"{o_district}网点"),
        TraceNode(at(t[2]), IN_TRANSIT, f"【{o_city}】快件已到达 {hub_o}，正发往 {hub_d}", o_city, hub_o),
        TraceNode(at(t[3]), IN_TRANSIT, f"【{dest_city}】快件已到达 {hub_d}", dest_city, hub_d),
    ]
    trouble = f("trouble")
    if trouble < exception_rate * 0.25:  # refused, back to the sender
        nodes += [
            TraceNode(
                at(t[4]), DELIVERING, f"【{dest_city}】{station}派件员{courier}正在派件", dest_city, station
            ),
            TraceNode(
                at(t[5]), EXCEPTION, f"【{dest_city}】收件人拒收，快件将退回寄件人", dest_city, station
            ),
            TraceNode(
                at(t[5] + 30),
                RETURNED,
                f"【{o_city}】快件已退回寄件人，签收人：仓库",
                o_city,
                f"{o_district}网点",
            ),
        ]
    elif trouble < exception_rate:  # a problem, solved a day later
        nodes += [
            TraceNode(
                at(t[4]),
                EXCEPTION,
                f"【{dest_city}】收件地址不详，{station}正在联系收件人",
                dest_city,
                station,
            ),
            TraceNode(
                at(t[4] + 20),
                DELIVERING,
                f"【{dest_city}】{station}派件员{courier}正在派件",
                dest_city,
                station,
            ),
            TraceNode(
                at(t[5] + 20), DELIVERED, f"【{dest_city}】快件已签收，签收人：本人", dest_city, station
            ),
        ]
    else:
        nodes += [
            TraceNode(
                at(t[4]), DELIVERING, f"【{dest_city}】{station}派件员{courier}正在派件", dest_city, station
            ),
            TraceNode(
                at(t[5]),
                DELIVERED,
                f"【{dest_city}】快件已签收，{'签收人：本人' if f('sign') < 0.6 else '已放入快递柜，请及时取件'}",
                dest_city,
                station,
            ),
        ]
    # Strictly increasing times (a tiny compression can squeeze nodes into one second).
    out: list[TraceNode] = []
    for node in nodes:
        if out and node.time <= out[-1].time:
            node = TraceNode(out[-1].time + 1, node.status, node.text, node.city, node.site)
        out.append(node)
    return out


@dataclass
class Trace:
    tracking_no: str
    platform: str
    shop_id: str
    order_id: str
    carrier: str
    start: float
    dest_province: str
    dest_city: str
    extra: list[TraceNode]  # incidents put on the parcel (``incident``)
    cut: float  # planned nodes after this time are dropped (0 = none); set by a return
    emitted: int  # nodes already pushed
    ahead: float  # seconds this parcel's clock runs ahead of the world's (``fast_forward``)

    def now(self, world: World) -> float:
        return world.clock.now() + self.ahead

    def journey(self, world: World) -> list[TraceNode]:
        from .world import CARRIERS

        planned = plan(
            seed=world.seed,
            tracking_no=self.tracking_no,
            carrier_name=CARRIERS.get(self.carrier, (self.carrier,))[0],
            start=self.start,
            dest_province=self.dest_province,
            dest_city=self.dest_city,
            compression=world.time_compression,
            exception_rate=float(world.get_setting(EXCEPTION_RATE_SETTING, DEFAULT_EXCEPTION_RATE)),
        )
        if self.cut:
            planned = [n for n in planned if n.time <= self.cut]
        return sorted([*planned, *self.extra], key=lambda n: n.time)

    def nodes(self, world: World, now: float | None = None) -> list[TraceNode]:
        """The nodes whose time has come, oldest first."""
        now = self.now(world) if now is None else now
        return [n for n in self.journey(world) if n.time <= now]


_COLUMNS = "tracking_no, platform, shop_id, order_id, carrier, start, dest_province, dest_city, extra, cut, emitted, ahead"


def _row_to_trace(row: tuple[Any, ...]) -> Trace:
    values = list(row)
    values[8] = [TraceNode(**n) for n in json.loads(values[8] or "[]")]
    return Trace(*values)


def start_trace(c: Any, *, tracking_no: str, platform: str, shop_id: str, order_id: str, carrier: str,
                start: float, dest_province: str, dest_city: str) -> None:  # fmt: skip
    """Inside a world write: a parcel left (a number already on its way keeps its journey)."""
    c.execute(
        f"INSERT OR IGNORE INTO traces ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '[]', 0, 0, 0)",
        (tracking_no, platform, shop_id, order_id, carrier, start, dest_province, dest_city),
    )


def get(world: World, tracking_no: str) -> Trace | None:
    rows = world.read(f"SELECT {_COLUMNS} FROM traces WHERE tracking_no=?", (tracking_no,))
    return _row_to_trace(rows[0]) if rows else None


def all_traces(world: World, *, shop_id: str | None = None) -> list[Trace]:
    if shop_id:
        rows = world.read(f"SELECT {_COLUMNS} FROM traces WHERE shop_id=? ORDER BY start", (shop_id,))
    else:
        rows = world.read(f"SELECT {_COLUMNS} FROM traces ORDER BY start")
    return [_row_to_trace(r) for r in rows]


def fast_forward(world: World, seconds: float, tracking_nos: list[str] | None = None) -> int:
    """Run the parcels' (all, or these) clock ``seconds`` further ahead; returns how many moved."""
    if seconds < 0:
        raise ValueError("a parcel's clock never goes backwards")
    with world.write() as c:
        if tracking_nos is None:
            return c.execute("UPDATE traces SET ahead = ahead + ?", (seconds,)).rowcount
        return sum(
            c.execute("UPDATE traces SET ahead = ahead + ? WHERE tracking_no=?", (seconds, t)).rowcount
            for t in tracking_nos
        )


def incident(world: World, tracking_no: str, *, returned: bool = False, text: str = "") -> Trace:
    """Put trouble on a parcel now: an exception (it is delivered later as planned), or with
    ``returned`` a refusal — the parcel goes back to the sender and is never delivered."""
    from .world import NotFound

    trace = get(world, tracking_no)
    if trace is None:
        raise NotFound("no parcel with this tracking number is on its way", tracking_no=tracking_no)
    present = trace.now(world)
    done = trace.nodes(world, present)
    now = max(int(present), done[-1].time + 1 if done else 0)
    city = done[-1].city if done else trace.dest_city
    site = done[-1].site if done else ""
    if returned:
        extra = [
            TraceNode(now, EXCEPTION, text or f"【{city}】收件人拒收，快件将退回寄件人", city, site),
            TraceNode(now + 1, RETURNED, "快件已退回寄件人", city, site),
        ]
        cut = float(now)
    else:
        extra = [
            TraceNode(now, EXCEPTION, text or f"【{city}】快件滞留，{site or '网点'}正在处理", city, site)
        ]
        cut = trace.cut
    catch_up = max(0.0, extra[-1].time - present)  # the incident is visible at once
    with world.write() as c:
        c.execute(
            "UPDATE traces SET extra=?, cut=?, done=0, ahead=ahead+? WHERE tracking_no=?",
            (
                json.dumps([asdict(n) for n in [*trace.extra, *extra]], ensure_ascii=False),
                cut,
                catch_up,
                tracking_no,
            ),
        )
    return get(world, tracking_no)  # type: ignore[return-value]


def advance(world: World, limit: int = 500) -> int:
    """Emit one ``logistics_updated`` event per parcel (of a platform that pushes logistics)
    with nodes that came due since the last call; returns the number of events."""
    now = world.clock.now()
    placeholders = ",".join("?" * len(PUSH_PLATFORMS))
    rows = world.read(
        f"SELECT {_COLUMNS} FROM traces WHERE done=0 AND platform IN ({placeholders}) AND start - ahead <= ? "
        "ORDER BY start LIMIT ?",
        (*sorted(PUSH_PLATFORMS), now, 10 * limit),
    )
    emitted = 0
    for row in rows:
        trace = _row_to_trace(row)
        due = trace.nodes(world)
        if len(due) <= trace.emitted:
            continue
        world.emit_trace_update(trace, due, trace.emitted)
        emitted += 1
        if emitted >= limit:
            break
    return emitted
