"""The local print components (sandbox/printer.py) driven by a real WebSocket client: the
Cainiao-family protocol (Douyin, Kuaishou at /ks/printer) and WeChat's v2.0 print, validation of
the platforms' print data against the world's waybills, the print journal, printer faults,
reconnecting, and the server / CLI / admin wiring."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from sandbox import douyin, main
from sandbox.clock import FakeClock
from sandbox.douyin import DouyinApp
from sandbox.kuaishou import KuaishouApp, grant_token
from sandbox.pii import PiiVault
from sandbox.printer import PrintComponent, PrinterSettings
from sandbox.seed import seed_default_world
from sandbox.server import SandboxServer, ServerOptions
from sandbox.wechat import WechatApp, create_self_use_app
from sandbox.world import OrderItemSpec, World
from tests.sandbox.refclients.douyin import DouyinRefClient
from tests.sandbox.refclients.kuaishou import KuaishouRefClient
from tests.sandbox.refclients.wechat import WechatRefClient
from tests.sandbox.test_kuaishou_api import KsEnv
from tests.sandbox.test_kuaishou_fulfilment import waybill_request

CUSTOM = {
    "templateURL": "https://erp.example/labels/custom-76x130.xml",
    "data": {"items": "T恤 白 M ×1", "parcel": "1/1"},
}


@dataclass
class Rig:
    world: World
    components: dict[str, PrintComponent]
    dy: DouyinRefClient
    dy_token: str
    ks: KsEnv
    wx: WechatRefClient

    def shop(self, platform: str) -> str:
        return self.world.shops(platform)[0].shop_id

    def paid_order(self, platform: str) -> Any:
        shop_id = self.shop(platform)
        sku = next(s for s in self.world.skus(shop_id) if s.stock >= 5)
        return self.world.create_order(
            shop_id=shop_id, buyer_id=1, pay=True, items=[OrderItemSpec(sku.sku_id, 1)]
        )

    def douyin_print_data(self) -> dict[str, str]:
        """A number taken from the world and its print data from ``/logistics/waybillApply``."""
        order = self.paid_order("douyin")
        waybill = self.world.issue_waybill(
            shop_id=self.shop("douyin"), carrier="ZTO", order_id=order.order_id, package_id="P1"
        )
        answer = self.dy.data(
            "/logistics/waybillApply",
            {"waybill_applies": [{"logistics_code": "zhongtong", "track_no": waybill.tracking_no}]},
            self.dy_token,
        )
        [info] = answer["waybill_infos"]
        return {
            "tracking_no": waybill.tracking_no,
            "encryptedData": info["print_data"],
            "signature": info["sign"],
        }

    def kuaishou_print_data(self) -> dict[str, str]:
        order = self.paid_order("kuaishou")
        request = waybill_request(self.ks, order.lines[0].line_id)
        [answer] = self.ks.data(
            "open.express.ebill.get", {"getEbillOrderRequest": [request]}, http_method="POST"
        )
        [item] = answer["data"]
        return {
            "tracking_no": item["waybillCode"],
            "encryptedData": item["printData"],
            "signature": item["signature"],
        }

    def wechat_print_info(self) -> dict[str, str]:
        order = self.paid_order("wechat")
        line = order.lines[0]
        base = "/channels/ec/logistics/ewaybill/biz"
        account = self.wx.call(f"{base}/account/get", {"delivery_id": "ZTO"})["account_list"][0]
        template = self.wx.call(f"{base}/template/get", {"delivery_id": "ZTO"})["total_template"][0][
            "default_template_id"
        ]
        request = {
            "delivery_id": "ZTO", "site_code": account["site_info"]["site_code"], "ewaybill_acct_id": account["acct_id"],
            "sender": {"name": "仓库", "mobile": "13800005678", "province": "浙江省", "city": "杭州市", "county": "余杭区", "address": "仓前1号"},
            "ec_order_list": [{"ec_order_id": order.order_id, "goods_list": [{"good_name": line.title, "good_count": 1,
                                                                              "product_id": line.product_id, "sku_id": line.sku_id}]}],
        }  # fmt: skip
        ewaybill_order_id = self.wx.call(f"{base}/order/precreate", request)["ewaybill_order_id"]
        created = self.wx.call(
            f"{base}/order/create",
            {**request, "ewaybill_order_id": ewaybill_order_id, "template_id": template},
        )
        printed = self.wx.call(
            f"{base}/print/get", {"ewaybill_order_id": ewaybill_order_id, "template_id": template}
        )
        return {
            "tracking_no": created["waybill_id"],
            "printInfo": printed["print_info"],
            "ewaybill_order_id": ewaybill_order_id,
        }


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    world = World(tmp_path_factory.mktemp("printer") / "world.sqlite3", seed=21)
    seed_default_world(world, platforms=("douyin", "kuaishou", "wechat"), buyers=20)
    components = {name: PrintComponent(world, name, port=0) for name in ("douyin", "kuaishou", "wechat")}
    for component in components.values():
        component.start()
    dy_app, ks_app, wx_app = DouyinApp(world), KuaishouApp(world), WechatApp(world)
    with (
        httpx.Client(transport=httpx.WSGITransport(app=dy_app), base_url="http://dy") as dy_http,
        httpx.Client(transport=httpx.WSGITransport(app=ks_app), base_url="http://ks") as ks_http,
        httpx.Client(transport=httpx.WSGITransport(app=wx_app), base_url="http://wx") as wx_http,
    ):
        app = world.apps("douyin")[0]
        dy = DouyinRefClient(app.app_key, app.app_secret, http=dy_http)
        ks_app_rec, ks_shop = world.apps("kuaishou")[0], world.shops("kuaishou")[0].shop_id
        ks_client = KuaishouRefClient(
            ks_app_rec.app_key, ks_app_rec.app_secret, ks_app_rec.sign_secret, http=ks_http, clock=time.time
        )
        ks = KsEnv(world, FakeClock(start=time.time()), ks_app_rec, ks_app, ks_http, ks_client, ks_shop,
                   grant_token(world, ks_app_rec, ks_shop).access_token)  # fmt: skip
        wx_self = create_self_use_app(world, world.shops("wechat")[0].shop_id)
        wx = WechatRefClient(wx_self.app_key, wx_self.app_secret, http=wx_http)
        wx.login()
        yield Rig(
            world, components, dy, douyin.ensure_token(world, app, world.shops("douyin")[0].shop_id), ks, wx
        )
    for component in components.values():
        component.stop()
    world.close()


@pytest.fixture(autouse=True)
def _default_printer_settings(rig: Rig) -> Iterator[None]:
    for name in rig.components:
        rig.world.delete_settings(f"printer:{name}")
    yield
    for name, component in rig.components.items():
        rig.world.delete_settings(f"printer:{name}")
        component.notify_on_task_failure = True


class Page:
    """What a browser page does: send requests with fresh requestIDs, match answers by requestID,
    keep pushes (notifyPrintResult) aside."""

    def __init__(self, url: str, *, dialect: str = "cainiao") -> None:
        self._stack = ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(connect(url, open_timeout=5, max_size=None))
        self.dialect = dialect
        self.pushes: list[dict[str, Any]] = []

    def request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        request_id = uuid.uuid4().hex
        key = "command" if self.dialect == "wechat" else "cmd"
        version = "2.0" if self.dialect == "wechat" else "1.0"
        self.ws.send(json.dumps({key: cmd, "requestID": request_id, "version": version, **fields}))
        while True:
            message = json.loads(self.ws.recv(timeout=5))
            if message.get("requestID") == request_id:
                assert message[key] == cmd
                return message
            self.pushes.append(message)

    def push(self, task_id: str) -> dict[str, Any]:
        """The next notifyPrintResult for ``task_id``."""
        while True:
            for message in self.pushes:
                if message.get("taskID") == task_id:
                    self.pushes.remove(message)
                    return message
            self.pushes.append(json.loads(self.ws.recv(timeout=5)))

    def close(self) -> None:
        self._stack.close()


def _task(
    task_id: str, *documents: dict[str, Any], printer: str = "", preview: bool = False
) -> dict[str, Any]:
    return {"taskID": task_id, "preview": preview, "previewType": "pdf", "printer": printer, "firstDocumentNumber": 1,
            "totalDocumentCount": len(documents), "documents": list(documents)}  # fmt: skip


def _document(document_id: str, data: dict[str, str], *, custom: bool = True) -> dict[str, Any]:
    platform_part = {
        "encryptedData": data["encryptedData"],
        "signature": data["signature"],
        "templateURL": "standard",
        "ver": "1.0",
    }
    return {"documentID": document_id, "contents": [platform_part, *([CUSTOM] if custom else [])]}


def test_printers_configs_and_agent_info(rig: Rig) -> None:
    page = Page(rig.components["douyin"].url)
    try:
        printers = page.request("getPrinters")
        assert printers["status"] == "success" and printers["defaultPrinter"] == "KM-202 热敏打印机"
        assert {p["name"]: p["status"] for p in printers["printers"]}["Xprinter XP-460B"] == "paperOut"
        config = page.request("getPrinterConfig", printer="Deli DL-888T")["printer"]
        assert config["paperSize"] == {"width": 76, "height": 130}
        assert (
            page.request("setPrinterConfig", printer={"name": "Deli DL-888T", "horizontalOffset": 2})[
                "status"
            ]
            == "success"
        )
        assert page.request("getPrinterConfig", printer="Deli DL-888T")["printer"]["horizontalOffset"] == 2
        assert page.request("getPrinterConfig", printer="nope")["status"] == "failed"
        assert page.request("getAgentInfo")["version"]
        assert page.request("setGlobalConfig", notifyOnTaskFailure=False)["status"] == "success"
        assert page.request("getGlobalConfig")["notifyOnTaskFailure"] is False
        assert page.request("noSuchCommand")["status"] == "failed"
        page.ws.send(json.dumps({"cmd": "getPrinters", "requestID": "r-no-version"}))
        assert json.loads(page.ws.recv(timeout=5))["status"] == "failed"
    finally:
        page.close()


def test_print_is_validated_journaled_and_notified(rig: Rig) -> None:
    first, second = rig.douyin_print_data(), rig.douyin_print_data()
    page = Page(rig.components["douyin"].url)
    try:
        answer = page.request(
            "print",
            task=_task("T-ok", _document("d1", first), _document("d2", second), printer="Deli DL-888T"),
        )
        assert (answer["status"], answer["taskID"]) == ("success", "T-ok")
        notify = page.push("T-ok")
        assert (notify["cmd"], notify["taskStatus"], notify["printer"]) == (
            "notifyPrintResult",
            "printed",
            "Deli DL-888T",
        )
        assert [(d["documentID"], d["status"]) for d in notify["printStatus"]] == [
            ("d1", "success"),
            ("d2", "success"),
        ]
        status = page.request("getTaskStatus", taskID=["T-ok", "T-unknown"])["printStatus"]
        assert (status[0]["taskStatus"], status[0]["printed"], status[1]["taskStatus"]) == (
            "printed",
            True,
            "notFound",
        )
        again = page.request("print", task=_task("T-ok", _document("d1", first)))  # a reprint is a new task
        assert again["status"] == "failed" and "taskID" in again["msg"]
    finally:
        page.close()
    records = rig.world.print_records(task_id="T-ok")
    assert [(r.tracking_no, r.printer, r.status) for r in records] == [
        (first["tracking_no"], "Deli DL-888T", "printed"),
        (second["tracking_no"], "Deli DL-888T", "printed"),
    ]
    assert records[0].custom == CUSTOM and records[0].shop_id == rig.shop("douyin")
    assert rig.world.print_counts(component="douyin")[first["tracking_no"]] == 1


def test_forged_mismatched_or_cancelled_print_data_fails_the_document(rig: Rig) -> None:
    good, cancelled, signed_elsewhere = (
        rig.douyin_print_data(),
        rig.douyin_print_data(),
        rig.douyin_print_data(),
    )
    rig.world.cancel_waybill(cancelled["tracking_no"])
    other = PiiVault(b"another world")
    forged_blob = other.seal(shop_id=rig.shop("douyin"), text=json.dumps({"track_no": good["tracking_no"]}))
    forged = {"encryptedData": forged_blob, "signature": rig.world.vault.mac(forged_blob)}
    tampered = {**good, "signature": good["signature"][:-1] + ("0" if good["signature"][-1] != "0" else "1")}
    swapped = {**good, "signature": signed_elsewhere["signature"]}  # another label's signature
    documents = [
        _document("ok", good), _document("tampered", tampered), _document("swapped", swapped),
        _document("forged", forged), _document("cancelled", cancelled),
        {"documentID": "two", "contents": [_document("x", good)["contents"][0], _document("y", good)["contents"][0]]},
        {"documentID": "no-data", "contents": [CUSTOM]},
        {"documentID": "bad-custom", "contents": [_document("z", good)["contents"][0], {"templateURL": "x", "data": "str"}]},
    ]  # fmt: skip
    page = Page(rig.components["douyin"].url)
    try:
        assert page.request("print", task=_task("T-bad", *documents))["status"] == "success"
        notify = page.push("T-bad")
    finally:
        page.close()
    assert notify["taskStatus"] == "failed"
    outcome = {d["documentID"]: (d["status"], d["msg"]) for d in notify["printStatus"]}
    assert outcome["ok"] == ("success", "")
    assert outcome["tampered"] == outcome["swapped"] == ("failed", "打印数据验签失败")
    assert outcome["forged"] == ("failed", "打印数据无法解密")
    assert outcome["cancelled"] == ("failed", f"运单号{cancelled['tracking_no']}已取消")
    assert outcome["two"][0] == outcome["no-data"][0] == outcome["bad-custom"][0] == "failed"
    assert rig.world.print_counts().get(cancelled["tracking_no"]) is None
    failed = rig.world.print_records(task_id="T-bad", status="failed")
    assert len(failed) == 7 and all(r.reason for r in failed)


def test_malformed_print_requests_are_refused_at_once(rig: Rig) -> None:
    page = Page(rig.components["douyin"].url)
    try:
        assert page.request("print", task=_task("T-empty"))["status"] == "failed"
        assert (
            page.request("print", task={"documents": [{"documentID": "1", "contents": [CUSTOM]}]})["status"]
            == "failed"
        )
        assert (
            page.request(
                "print", task=_task("T-np", {"documentID": "1", "contents": [CUSTOM]}, printer="nope")
            )["status"]
            == "failed"
        )
        page.ws.send("not json")
        assert json.loads(page.ws.recv(timeout=5))["status"] == "failed"
    finally:
        page.close()
    assert rig.world.print_records(task_id="T-empty") == []


def test_paper_out_failure_rate_and_quiet_failures(rig: Rig) -> None:
    data = rig.douyin_print_data()
    page = Page(rig.components["douyin"].url)
    try:
        page.request("print", task=_task("T-paper", _document("d", data), printer="Xprinter XP-460B"))
        assert page.push("T-paper")["printStatus"][0]["msg"] == "打印机缺纸"
        PrinterSettings.save(rig.world, "douyin", failure_rate=1.0)
        page.request("print", task=_task("T-fail", _document("d", data)))
        assert page.push("T-fail")["taskStatus"] == "failed"
        PrinterSettings.save(rig.world, "douyin", failure_rate=0.0)
        page.request("setGlobalConfig", notifyOnTaskFailure=False)
        page.request("print", task=_task("T-quiet", _document("d", data), printer="Xprinter XP-460B"))
        page.request("print", task=_task("T-loud", _document("d", data)))
        assert page.push("T-loud")["taskStatus"] == "printed"  # the spool is in order: T-quiet came first
        assert all(p.get("taskID") != "T-quiet" for p in page.pushes)
        assert page.request("getTaskStatus", taskID=["T-quiet"])["printStatus"][0]["taskStatus"] == "failed"
    finally:
        page.close()
    assert rig.world.print_counts(component="douyin")[data["tracking_no"]] == 1  # only T-loud printed


def test_reconnect_and_ask_for_the_task_status(rig: Rig) -> None:
    data = rig.douyin_print_data()
    PrinterSettings.save(rig.world, "douyin", delay_ms=300)
    page = Page(rig.components["douyin"].url)
    assert page.request("print", task=_task("T-gone", _document("d", data)))["status"] == "success"
    page.close()  # the page reloads before the result comes
    page = Page(rig.components["douyin"].url)
    try:
        deadline = time.monotonic() + 5
        while (status := page.request("getTaskStatus", taskID=["T-gone"])["printStatus"][0])[
            "taskStatus"
        ] == "pending":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert status["taskStatus"] == "printed" and status["documentStatus"][0]["status"] == "success"
    finally:
        page.close()
    restarted = PrintComponent(rig.world, "douyin", port=0)  # after a restart, from the journal
    restarted.start()
    try:
        page = Page(restarted.url)
        status = page.request("getTaskStatus", taskID=["T-gone"])["printStatus"][0]
        assert (status["taskStatus"], status["printer"]) == ("printed", "KM-202 热敏打印机")
        assert page.request("print", task=_task("T-gone", _document("d", data)))["status"] == "failed"
        page.close()
    finally:
        restarted.stop()


def test_preview_is_rendered_not_printed(rig: Rig) -> None:
    data = rig.douyin_print_data()
    page = Page(rig.components["douyin"].url)
    try:
        answer = page.request("print", task=_task("T-preview", _document("d", data), preview=True))
        notify = page.push("T-preview")
    finally:
        page.close()
    assert notify["taskStatus"] == "rendered" and answer["previewURL"].endswith("/preview/T-preview")
    assert data["tracking_no"] in httpx.get(answer["previewURL"], trust_env=False).text
    assert rig.world.print_counts().get(data["tracking_no"]) is None
    [record] = rig.world.print_records(task_id="T-preview", include_previews=True)
    assert record.preview and record.status == "printed"


def test_kuaishou_component_listens_on_ks_printer_and_takes_only_kuaishou_labels(rig: Rig) -> None:
    component = rig.components["kuaishou"]
    assert component.url.endswith("/ks/printer")
    with (
        pytest.raises(InvalidStatus),
        connect(component.url.removesuffix("/ks/printer") + "/", open_timeout=5),
    ):
        pass
    ks_data, dy_data = rig.kuaishou_print_data(), rig.douyin_print_data()
    page = Page(component.url)
    try:
        page.request("print", task=_task("KS-1", _document("k", ks_data), _document("d", dy_data)))
        notify = page.push("KS-1")
    finally:
        page.close()
    outcome = {d["documentID"]: (d["status"], d["msg"]) for d in notify["printStatus"]}
    assert outcome == {"k": ("success", ""), "d": ("failed", "不是本平台的电子面单")}
    assert rig.world.print_counts(component="kuaishou") == {ks_data["tracking_no"]: 1}


def test_wechat_component_prints_a_task_list(rig: Rig) -> None:
    label = rig.wechat_print_info()
    page = Page(rig.components["wechat"].url, dialect="wechat")
    try:
        printers = page.request("getPrinterList")
        assert printers["errcode"] == 0 and len(printers["printerList"]) == 3
        task = {"taskID": "WX-1", "printInfo": label["printInfo"], "printNum": {"curNum": 1, "sumNum": 1},
                "customInfo": {"templateUrl": "https://erp.example/wx-custom.html", "data": {"items": "T恤×1"}}}  # fmt: skip
        bad = {
            "taskID": "WX-2",
            "printInfo": label["printInfo"][:-4] + "AAAA",
            "printNum": {"curNum": 1, "sumNum": 1},
        }
        answer = page.request("print", taskList=[task, bad], printType=1, printer="Deli DL-888T")
        assert answer["errcode"] == 0 and [t["taskID"] for t in answer["taskList"]] == ["WX-1", "WX-2"]
        good_push, bad_push = page.push("WX-1"), page.push("WX-2")
        assert (good_push["command"], good_push["status"]) == ("notifyPrintResult", "printed")
        assert bad_push["status"] == "failed" and bad_push["errmsg"] == "打印数据无法解密"
        assert page.request("print", taskList=[task], printType=1)["errcode"] != 0  # repeated taskID
    finally:
        page.close()
    [record] = rig.world.print_records(component="wechat", task_id="WX-1")
    assert record.tracking_no == label["tracking_no"] and record.custom["templateURL"].endswith(
        "wx-custom.html"
    )


def test_served_with_the_sandbox_and_configured_from_cli_and_admin(tmp_path, capsys) -> None:
    world = World(tmp_path / "served.sqlite3", seed=4)
    seed_default_world(world, platforms=("douyin",), buyers=5)
    server = SandboxServer(world, ServerOptions(ports={}, simulate=False, push=False, threads=2))
    server.start()
    try:
        urls = server.urls
        assert urls["print-douyin"].startswith("ws://127.0.0.1:") and urls["print-kuaishou"].endswith(
            "/ks/printer"
        )
        with httpx.Client(base_url=urls["status"], trust_env=False) as status:
            assert status.get("/api/status").json()["urls"]["print-wechat"] == urls["print-wechat"]
            answer = status.post(
                "/admin/printer", json={"component": "douyin", "paper_out": ["Deli DL-888T"]}
            )
            assert answer.json()["settings"]["paper_out"] == ["Deli DL-888T"]
            assert status.post("/admin/printer", json={"component": "nope"}).status_code == 400
        page = Page(urls["print-douyin"])
        try:
            statuses = {p["name"]: p["status"] for p in page.request("getPrinters")["printers"]}
            assert statuses["Deli DL-888T"] == "paperOut" and statuses["Xprinter XP-460B"] == "enable"
        finally:
            page.close()
        assert main(["--data", world.path, "printer", "douyin", "--failure-rate", "0.25", "--paper-ok"]) == 0
        assert "failure_rate=0.25" in capsys.readouterr().out
        settings = PrinterSettings.load(world, "douyin")
        assert (settings.failure_rate, settings.paper_out) == (0.25, [])
        assert main(["--data", world.path, "printer", "douyin", "--failure-rate", "2"]) == 2
    finally:
        server.stop()
        world.close()


BROWSER_PRINT = """async ([url, task]) => {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  const seen = [];
  const waitFor = (match) => new Promise((resolve, reject) => {
    const check = () => { const hit = seen.find(match); if (hit) { resolve(hit); return true; } return false; };
    if (!check()) ws.addEventListener('message', () => check());
    setTimeout(() => reject(new Error('no answer within 5 s')), 5000);
  });
  ws.onmessage = (event) => seen.push(JSON.parse(event.data));
  ws.send(JSON.stringify({cmd: 'getPrinters', requestID: 'b-1', version: '1.0'}));
  const printers = await waitFor((m) => m.requestID === 'b-1');
  ws.send(JSON.stringify({cmd: 'print', requestID: 'b-2', version: '1.0', task}));
  const accepted = await waitFor((m) => m.requestID === 'b-2');
  const notified = await waitFor((m) => m.cmd === 'notifyPrintResult' && m.taskID === task.taskID);
  ws.close();
  return {printers, accepted, notified};
}"""


@pytest.mark.browser
def test_a_real_browser_page_prints_through_the_component(rig: Rig, browser) -> None:
    """Headless Chromium's own WebSocket (handshake, origin, frames) against the component."""
    data = rig.douyin_print_data()
    page = browser.new_page()
    try:
        page.set_content("<!doctype html><title>print</title>")
        result = page.evaluate(
            BROWSER_PRINT, [rig.components["douyin"].url, _task("B-1", _document("d", data))]
        )
    finally:
        page.close()
    assert result["printers"]["status"] == "success" and result["accepted"]["taskID"] == "B-1"
    assert result["notified"]["taskStatus"] == "printed"
    assert rig.world.print_counts(component="douyin")[data["tracking_no"]] == 1
