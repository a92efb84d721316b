"""Command line: ``python -m sandbox {serve,reset,status,fault,push,printer,configure,sign} ...``.

Every command works on the SQLite world file (``--data``, default ``.data/sandbox.sqlite3``),
so ``fault`` / ``push`` / ``configure`` change a running server within a second.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from urllib.parse import urlencode

from . import untidy
from .faults import FaultRule, Faults
from .printer import FLAVOURS, PrinterSettings
from .pushes import PushSettings
from .server import (
    DEFAULT_DATA_PATH,
    DEFAULT_PORTS,
    ServerOptions,
    open_world,
    pretty,
    serve,
    status_snapshot,
)
from .world import World


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="ecbao platform sandbox")
    parser.add_argument("--data", default=DEFAULT_DATA_PATH, help=f"world file (default {DEFAULT_DATA_PATH})")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="serve every platform, the status page, pushes and the simulator")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--orders-per-minute", type=float, default=0.5, help="per shop (default 0.5)")
    p.add_argument(
        "--time-compression",
        type=float,
        default=60.0,
        help="divides platform timers and push retries (default 60)",
    )
    p.add_argument(
        "--merchant-bot", action="store_true", help="also play the merchant (ship, answer after-sales)"
    )
    p.add_argument("--no-simulator", action="store_true")
    p.add_argument("--no-printers", action="store_true", help="do not start the local print components")
    p.add_argument("--threads", type=int, default=8, help="waitress threads per port")
    for name, port in DEFAULT_PORTS.items():
        p.add_argument(f"--{name}-port", type=int, default=port)

    p = sub.add_parser("reset", help="empty the world and seed the default one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tidy", action="store_true", help="seed and serve without the untidy variations")

    sub.add_parser("status", help="apps, shops, counts, faults, recent calls and pushes")

    p = sub.add_parser("fault", help="set or clear faults for a platform path ('*' = every path)")
    p.add_argument("platform")
    p.add_argument("path", nargs="?", default="*")
    for name in FaultRule.field_names():
        p.add_argument(f"--{name.replace('_', '-')}", type=float, dest=name)
    p.add_argument(
        "--clear", action="store_true", help="remove the rule (with path '*': every rule of the platform)"
    )
    p.add_argument("--revoke-tokens", action="store_true", help="invalidate the platform's tokens now")
    p.add_argument("--shop", help="with --revoke-tokens: only this shop's")

    p = sub.add_parser("push", help="push delivery settings (duplicates, reordering)")
    p.add_argument("platform")
    p.add_argument("--duplicate-probability", type=float)
    p.add_argument("--reorder-probability", type=float)
    p.add_argument("--max-reorder-delay", type=float)

    p = sub.add_parser("printer", help="show or change a local print component's printers and faults")
    p.add_argument("component", choices=sorted(FLAVOURS))
    p.add_argument("--failure-rate", type=float, help="share of documents that fail at the printer (0..1)")
    p.add_argument(
        "--paper-out", action="append", metavar="PRINTER", help="a printer out of paper (repeatable)"
    )
    p.add_argument("--paper-ok", action="store_true", help="every printer has paper again")
    p.add_argument("--delay-ms", type=float, help="time from accepting a task to its notifyPrintResult")

    p = sub.add_parser("configure", help="set an app's webhook URL / OAuth redirect URI")
    p.add_argument("platform")
    p.add_argument("--webhook-url")
    p.add_argument("--redirect-uri")
    p.add_argument(
        "--auth-event-url", help="WeChat third-party platform: where component_verify_ticket is pushed"
    )

    p = sub.add_parser("sign", help="print a ready curl command for one signed API call")
    p.add_argument("platform", choices=["douyin"])
    p.add_argument("path", help="API path, e.g. /order/searchList")
    p.add_argument("params", nargs="?", default="{}", help="business parameters as JSON")
    p.add_argument("--shop", help="shop id (default: the platform's first shop)")
    p.add_argument("--base-url", default=f"http://127.0.0.1:{DEFAULT_PORTS['douyin']}")
    p.add_argument("--execute", action="store_true", help="also send it and print the answer")

    p = sub.add_parser("untidy", help="show or set the seeded payload variations (on by default)")
    p.add_argument("--off", action="store_true", help="all variations off (tidy payloads)")
    p.add_argument("--defaults", action="store_true", help="back to the default rates")
    p.add_argument(
        "--set", action="append", default=[], metavar="NAME=RATE", help="one variation's rate (0..1)"
    )

    p = sub.add_parser("loadtest", help="measure signed /order/searchList calls against a running server")
    p.add_argument("--base-url", default=f"http://127.0.0.1:{DEFAULT_PORTS['douyin']}")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--size", type=int, default=100)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "reset":
        world = World(args.data, seed=args.seed)
        world.reset(seed=args.seed)
        if args.tidy:
            untidy.set_rates(world, {"*": 0})
        world.close()
        world = open_world(args.data, seed=args.seed)
        out(f"world reset and seeded (seed {args.seed}): {world.counts()}")
        return 0
    world = open_world(args.data)
    try:
        return COMMANDS[args.command](world, args)
    finally:
        world.close()


def _serve(args: argparse.Namespace) -> int:
    ports = {name: getattr(args, f"{name.replace('-', '_')}_port") for name in DEFAULT_PORTS}
    options = ServerOptions(
        host=args.host,
        ports=ports,
        orders_per_minute=args.orders_per_minute,
        time_compression=args.time_compression,
        merchant_bot=args.merchant_bot,
        simulate=not args.no_simulator,
        printers=not args.no_printers,
        threads=args.threads,
        seed=args.seed,
    )
    server = serve(args.data, seed=args.seed, options=options, block=False)
    out("ecbao platform sandbox")
    for name, url in server.urls.items():
        out(f"  {name:15s} {url}")
    for app in server.world.apps():
        out(f"  app {app.platform}: app_key={app.app_key} app_secret={app.app_secret}")
    out(
        f"  data {args.data}; {args.orders_per_minute} orders/min per shop; time compression x{args.time_compression}"
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        out("stopping")
    finally:
        server.stop()
    return 0


def _status(world: World, args: argparse.Namespace) -> int:
    out(pretty(status_snapshot(world, Faults(world))))
    return 0


def _fault(world: World, args: argparse.Namespace) -> int:
    faults = Faults(world)
    if args.revoke_tokens:
        out(f"revoked {faults.revoke_tokens(args.platform, shop_id=args.shop)} token(s)")
        return 0
    if args.clear:
        faults.clear(args.platform, None if args.path == "*" else args.path)
        out(f"cleared faults for {args.platform} {args.path}")
        return 0
    fields = {k: getattr(args, k) for k in FaultRule.field_names() if getattr(args, k) is not None}
    if not fields:
        out(pretty({f"{p} {path}": rule for (p, path), rule in faults.rules().items()}))
        return 0
    rule = faults.set(args.platform, args.path, **fields)
    out(f"{args.platform} {args.path}: {rule}")
    return 0


def _push(world: World, args: argparse.Namespace) -> int:
    changes = {
        k: getattr(args, k)
        for k in ("duplicate_probability", "reorder_probability", "max_reorder_delay")
        if getattr(args, k) is not None
    }
    out(str(PushSettings.save(world, args.platform, **changes)))
    return 0


def _printer(world: World, args: argparse.Namespace) -> int:
    changes: dict[str, object] = {}
    if args.failure_rate is not None:
        changes["failure_rate"] = args.failure_rate
    if args.delay_ms is not None:
        changes["delay_ms"] = args.delay_ms
    if args.paper_ok or args.paper_out:
        changes["paper_out"] = [] if args.paper_ok else args.paper_out
    try:
        settings = (
            PrinterSettings.save(world, args.component, **changes)
            if changes
            else PrinterSettings.load(world, args.component)
        )
    except ValueError as exc:
        out(f"error: {exc}")
        return 2
    out(f"print component {args.component} (ws port {FLAVOURS[args.component].default_port}): {settings}")
    return 0


def _configure(world: World, args: argparse.Namespace) -> int:
    app = world.apps(args.platform)[0]
    changes = {
        k: getattr(args, k)
        for k in ("webhook_url", "redirect_uri", "auth_event_url")
        if getattr(args, k) is not None
    }
    app = world.update_app(app.app_key, **changes)
    out(
        f"{app.platform} app {app.app_key}: webhook_url={app.webhook_url!r} redirect_uri={app.redirect_uri!r}"
        + (f" auth_event_url={app.auth_event_url!r}" if app.auth_event_url else "")
    )
    return 0


def _sign(world: World, args: argparse.Namespace) -> int:
    import json

    from . import douyin

    app = world.apps("douyin")[0]
    shop_id = args.shop or world.shops("douyin")[0].shop_id
    params = json.loads(args.params)
    token = (
        "" if args.path in ("/token/create", "/token/refresh") else douyin.ensure_token(world, app, shop_id)
    )
    query, body = douyin.signed_query(app, args.path, params, timestamp=int(time.time()), access_token=token)
    url = f"{args.base_url.rstrip('/')}{args.path}?{urlencode(query)}"
    out(
        f"curl -sS -X POST {shlex.quote(url)} -H 'Content-Type: application/json' "
        f"-H 'x-open-no-old-err-code: 1' --data-raw {shlex.quote(body)}"
    )
    if args.execute:
        import httpx

        response = httpx.post(
            url,
            content=body.encode(),
            headers={"Content-Type": "application/json", "x-open-no-old-err-code": "1"},
            trust_env=False,
        )
        out(pretty(response.json()))
    return 0


def _loadtest(world: World, args: argparse.Namespace) -> int:
    from .loadtest import run_load

    params = {"page": 0, "size": args.size, "order_by": "update_time", "order_asc": False}
    result = run_load(
        world, base_url=args.base_url, seconds=args.seconds, threads=args.threads, params=params
    )
    out(result.summary())
    return 0 if result.requests and not result.errors else 1


def _untidy(world: World, args: argparse.Namespace) -> int:
    if args.off or args.defaults:
        untidy.set_rates(world, {"*": 0} if args.off else None)
    if args.set:
        pairs = [item.split("=", 1) for item in args.set]
        try:
            untidy.set_rates(world, {name: float(rate) for name, rate in pairs})
        except ValueError as exc:
            out(f"error: {exc}")
            return 2
    for name, rate in untidy.rates(world).items():
        out(f"{name:32} {rate:4.2f}  {untidy.VARIATIONS[name][1]}")
    return 0


COMMANDS = {
    "untidy": _untidy,
    "loadtest": _loadtest,
    "status": _status,
    "fault": _fault,
    "push": _push,
    "printer": _printer,
    "configure": _configure,
    "sign": _sign,
}

if __name__ == "__main__":
    sys.exit(main())
