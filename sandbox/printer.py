"""Local print components: the programs a warehouse PC runs so that a browser page can print
the platforms' privacy waybills (隐私面单) — JSON over a WebSocket on 127.0.0.1.

Facts (shared/reference/operations.md §2): the Cainiao family protocol — Douyin's component on
13888, Kuaishou's on 16888 at ``/ks/printer`` (Cainiao's own on 13528) — every request
``{cmd, requestID, version: "1.0", …}``, every answer echoes ``cmd`` + ``requestID`` with
``status``/``msg``; commands ``getPrinters``, ``getPrinterConfig``, ``setPrinterConfig``,
``getAgentInfo``, ``getGlobalConfig``/``setGlobalConfig``, ``getTaskStatus {taskID: []}``,
``print {task: {taskID, preview, previewType, printer, firstDocumentNumber, totalDocumentCount,
documents: [{documentID, contents: [...]}]}}``; later the component pushes
``cmd: "notifyPrintResult"`` per task. WeChat's component (127.0.0.1:12705) takes
``{command: "print", version: "2.0", requestID, taskList: [{taskID, printInfo, printNum,
customInfo}], printType, printer}``.

What this imitation adds, so tests can trust a print:

* **Validation.** A document must carry exactly one piece of the platform's print data, as the
  sandbox's e-waybill API issued it — ``{"encryptedData": <print data string as returned>,
  "signature": <its signature>, …}`` (Douyin ``print_data``/``sign``, Kuaishou
  ``printData``/``signature``; WeChat: ``printInfo`` = ``print_info``, sealed, no signature).
  The signature must match, the data must open, its waybill must exist in the world, be
  ``issued`` (not cancelled) and belong to a shop of this component's platform. Anything else
  fails that document (``notifyPrintResult`` with ``status: "failed"`` and the reason).
  ecbao's custom area is accepted as ``{templateURL, data}`` (WeChat ``customInfo
  {templateUrl, data}``).
* **A journal.** Every document (printed or failed, previews flagged) goes to the world's
  ``print_log`` — ``World.print_records`` / ``World.print_counts`` answer which tracking numbers
  were printed, how often and on which printer.
* **Printers and faults.** Three printers by default, one of them out of paper; settings
  (``PrinterSettings``: ``failure_rate``, ``paper_out``, ``delay_ms``) live in the world file so
  the CLI (``python -m sandbox printer …``) and ``POST /admin/printer`` change a running one.

[choice] where the references are silent: the ``getPrinters`` printer ``status`` field, the
refusal of a repeated ``taskID`` ("taskID重复": a reprint is a new task), failure messages, the
preview URL (served by the component itself over HTTP), ``getTaskStatus`` answering from the
world's journal after a restart. [GUESS] every WeChat answer shape beyond the request:
answers echo ``command`` + ``requestID`` with ``errcode``/``errmsg``, and a
``command: "notifyPrintResult"`` push per task.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from .pii import DecryptError
from .world import PrintRecord, World

log = logging.getLogger("sandbox.printer")

AGENT_VERSION = "1.4.2-sandbox"
MAX_MESSAGE = 32 * 1024 * 1024  # a batch of hundreds of labels fits


@dataclass(frozen=True)
class Flavour:
    """One platform's component: where it listens and which dialect it speaks."""

    name: str
    platform: str
    default_port: int
    path: str  # the WebSocket path the page connects to ("/" = any)
    dialect: str  # "cainiao" | "wechat"


FLAVOURS: dict[str, Flavour] = {
    "douyin": Flavour("douyin", "douyin", 13888, "/", "cainiao"),
    "kuaishou": Flavour("kuaishou", "kuaishou", 16888, "/ks/printer", "cainiao"),
    "wechat": Flavour("wechat", "wechat", 12705, "/", "wechat"),
}

DEFAULT_PRINTERS = ("KM-202 热敏打印机", "Deli DL-888T", "Xprinter XP-460B")
PAPER_OUT_PRINTER = "Xprinter XP-460B"


@dataclass
class PrinterSettings:
    """Per-component behaviour, stored in world setting ``printer:<flavour>``."""

    printers: list[str] = field(default_factory=lambda: list(DEFAULT_PRINTERS))
    default_printer: str = DEFAULT_PRINTERS[0]
    paper_out: list[str] = field(default_factory=lambda: [PAPER_OUT_PRINTER])
    failure_rate: float = 0.0  # share of documents that fail at the printer ("打印机异常")
    delay_ms: float = 30.0  # time from accepting a task to its notifyPrintResult

    @classmethod
    def load(cls, world: World, flavour: str) -> PrinterSettings:
        stored = world.get_setting(f"printer:{flavour}", {}) or {}
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in stored.items() if k in known})

    @classmethod
    def save(cls, world: World, flavour: str, **changes: Any) -> PrinterSettings:
        if flavour not in FLAVOURS:
            raise ValueError(f"unknown print component {flavour!r}")
        current = asdict(cls.load(world, flavour))
        unknown = set(changes) - set(current)
        if unknown:
            raise ValueError(f"unknown printer settings: {sorted(unknown)}")
        current.update(changes)
        settings = cls(**current)
        if not 0.0 <= float(settings.failure_rate) <= 1.0:
            raise ValueError("failure_rate must be within 0..1")
        world.set_setting(f"printer:{flavour}", asdict(settings))
        return settings


class Refused(Exception):
    """A request the component answers with ``status: "failed"``."""


@dataclass
class DocumentResult:
    document_id: str
    status: str  # "success" | "failed"
    msg: str = ""
    tracking_no: str = ""
    shop_id: str = ""
    custom: dict[str, Any] = field(default_factory=dict)


@dataclass
class Task:
    task_id: str
    printer: str
    preview: bool
    documents: list[dict[str, Any]]
    connection: ServerConnection | None
    status: str = "pending"  # pending | printed | failed | rendered
    results: list[DocumentResult] = field(default_factory=list)


def _opened_content(world: World, blob: str) -> tuple[str, dict[str, Any]]:
    """``(shop_id, content)`` of a sealed print blob, or raise ``Refused``."""
    try:
        shop_id, text = world.vault.unseal(blob)
        content = json.loads(text)
    except (DecryptError, ValueError) as exc:
        raise Refused("打印数据无法解密") from exc
    if not isinstance(content, dict):
        raise Refused("打印数据无法解密")
    return shop_id, content


def _tracking_no(content: dict[str, Any]) -> str:
    for key in ("track_no", "waybillCode", "waybill_id", "waybill_code", "mailNo"):
        if content.get(key):
            return str(content[key])
    return ""


class PrintComponent:
    """One component (a flavour) on one port. ``start()`` binds (port 0 = a free one)."""

    def __init__(
        self, world: World, flavour: str = "douyin", *, host: str = "127.0.0.1", port: int | None = None,
        seed: int = 0,
    ) -> None:  # fmt: skip
        self.world = world
        self.flavour = FLAVOURS[flavour]
        self.host = host
        self.port = self.flavour.default_port if port is None else port
        self._rng = random.Random(seed)
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[Task | None] = queue.Queue()
        self._server: Server | None = None
        self._threads: list[threading.Thread] = []
        self._configs: dict[str, dict[str, Any]] = {}
        self.notify_on_task_failure = True
        self._settings_cache: tuple[int, PrinterSettings] | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        path = "" if self.flavour.path == "/" else self.flavour.path
        return f"ws://{self.host}:{self.port}{path}"

    def start(self) -> None:
        self._server = serve(
            self._session, self.host, self.port, process_request=self._process_request,
            max_size=MAX_MESSAGE, compression=None, server_header=f"print-component/{AGENT_VERSION}",
        )  # fmt: skip
        self.port = self._server.socket.getsockname()[1]
        for target, name in ((self._server.serve_forever, "serve"), (self._spool, "spool")):
            thread = threading.Thread(target=target, name=f"print-{self.flavour.name}-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def settings(self) -> PrinterSettings:
        version = self.world.settings_version()[0]
        if self._settings_cache is None or self._settings_cache[0] != version:
            self._settings_cache = (version, PrinterSettings.load(self.world, self.flavour.name))
        return self._settings_cache[1]

    # ------------------------------------------------------------------ HTTP side (handshake, previews)

    def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        path = request.path.split("?", 1)[0]
        if path.startswith("/preview/"):
            return connection.respond(HTTPStatus.OK, self._preview_text(path.removeprefix("/preview/")))
        if self.flavour.path != "/" and path != self.flavour.path:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        return None

    def _preview_text(self, task_id: str) -> str:
        with self._lock:
            task = self._tasks.get(task_id)
        if task is None:
            return "no such task\n"
        lines = [f"preview of task {task_id} ({len(task.results)} documents)"]
        lines += [f"{r.document_id}: {r.status} {r.tracking_no} {r.msg}".rstrip() for r in task.results]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ WebSocket side

    def _session(self, connection: ServerConnection) -> None:
        try:
            for message in connection:
                answer = self._answer(message, connection)
                if answer is not None:
                    connection.send(json.dumps(answer, ensure_ascii=False))
        except ConnectionClosed:
            pass
        finally:
            with self._lock:  # pushes for this connection's tasks have nowhere to go now
                for task in self._tasks.values():
                    if task.connection is connection:
                        task.connection = None

    def _answer(self, message: str | bytes, connection: ServerConnection) -> dict[str, Any] | None:
        try:
            request = json.loads(message)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            return {"cmd": "", "requestID": "", "status": "failed", "msg": "请求不是JSON对象"}
        if self.flavour.dialect == "wechat":
            return self._answer_wechat(request, connection)
        cmd, request_id = str(request.get("cmd") or ""), str(request.get("requestID") or "")
        head = {"cmd": cmd, "requestID": request_id}
        try:
            if not cmd or not request_id:
                raise Refused("缺少cmd或requestID")
            if str(request.get("version") or "") != "1.0":
                raise Refused("version必须为1.0")
            handler = getattr(self, f"_cmd_{cmd}", None)
            if handler is None:
                raise Refused(f"不支持的命令: {cmd}")
            return {**head, "status": "success", "msg": "", **handler(request, connection)}
        except Refused as exc:
            return {**head, "status": "failed", "msg": str(exc)}

    # --- Cainiao-family commands

    def _cmd_getPrinters(self, request: dict[str, Any], connection: ServerConnection) -> dict[str, Any]:  # noqa: N802
        settings = self.settings()
        return {
            "defaultPrinter": settings.default_printer,
            "printers": [
                {"name": name, "status": "paperOut" if name in settings.paper_out else "enable"}
                for name in settings.printers
            ],
        }

    def _printer(self, name: str) -> str:
        settings = self.settings()
        name = name or settings.default_printer
        if name not in settings.printers:
            raise Refused(f"打印机不存在: {name}")
        return name

    def _config(self, name: str) -> dict[str, Any]:
        return self._configs.get(name) or {
            "name": name, "needTopLogo": False, "needBottomLogo": False, "horizontalOffset": 0,
            "verticalOffset": 0, "forceNoPageMargins": True, "autoPageSize": False, "orientation": 0,
            "paperSize": {"width": 76, "height": 130},
        }  # fmt: skip

    def _cmd_getPrinterConfig(self, request: dict[str, Any], connection: ServerConnection) -> dict[str, Any]:  # noqa: N802
        return {"printer": self._config(self._printer(str(request.get("printer") or "")))}

    def _cmd_setPrinterConfig(self, request: dict[str, Any], connection: ServerConnection) -> dict[str, Any]:  # noqa: N802
        config = request.get("printer")
        if not isinstance(config, dict):
            raise Refused("printer必须是对象")
        name = self._printer(str(config.get("name") or ""))
        self._configs[name] = {**self._config(name), **config, "name": name}
        return {}

    def _cmd_getAgentInfo(self, request: dict[str, Any], connection: ServerConnection) -> dict[str, Any]:  # noqa: N802
        return {"version": AGENT_VERSION, "agentName": f"{self.flavour.name} print component (sandbox)"}

    def _cmd_getGlobalConfig(self, request: dict[str, Any], connection: ServerConnection) -> dict[str, Any]:  # noqa: N802
        return {"notifyOnTaskFailure": self.notify_on_task_failure}

    def _cmd_setGlobalConfig(self, request: dict[str, Any], connection: ServerConnection) -> dict[str, Any]:  # noqa: N802
        if "notifyOnTaskFailure" in request:
            self.notify_on_task_failure = bool(request["notifyOnTaskFailure"])
        return {}

    def _cmd_getTaskStatus(self, request: dict[str, Any], connection: ServerConnection) -> dict[str, Any]:  # noqa: N802
        ids = request.get("taskID")
        if not isinstance(ids, list) or not ids:
            raise Refused("taskID必须是非空数组")
        return {"printStatus": [self._task_status(str(task_id)) for task_id in ids]}

    def _task_status(self, task_id: str) -> dict[str, Any]:
        with self._lock:
            task = self._tasks.get(task_id)
        if task is not None:
            return {
                "taskID": task_id, "taskStatus": task.status, "printed": task.status == "printed",
                "printer": task.printer,
                "documentStatus": [{"documentID": r.document_id, "status": r.status, "msg": r.msg} for r in task.results],
            }  # fmt: skip
        records = self.world.print_records(
            component=self.flavour.name, task_id=task_id, include_previews=True
        )
        if not records:
            return {
                "taskID": task_id,
                "taskStatus": "notFound",
                "printed": False,
                "printer": "",
                "documentStatus": [],
            }
        status = "printed" if all(r.status == "printed" for r in records) else "failed"
        return {
            "taskID": task_id, "taskStatus": status, "printed": status == "printed", "printer": records[0].printer,
            "documentStatus": [
                {"documentID": r.document_id, "status": "success" if r.status == "printed" else "failed", "msg": r.reason}
                for r in records
            ],
        }  # fmt: skip

    def _cmd_print(self, request: dict[str, Any], connection: ServerConnection) -> dict[str, Any]:
        spec = request.get("task")
        if not isinstance(spec, dict):
            raise Refused("task必须是对象")
        task_id = str(spec.get("taskID") or "")
        documents = spec.get("documents")
        if not task_id:
            raise Refused("缺少taskID")
        if not isinstance(documents, list) or not documents:
            raise Refused("documents不能为空")
        for document in documents:
            if not isinstance(document, dict) or not document.get("documentID"):
                raise Refused("每个document都需要documentID")
            if not isinstance(document.get("contents"), list) or not document["contents"]:
                raise Refused(f"document {document.get('documentID')} 的contents不能为空")
        preview = bool(spec.get("preview"))
        task = Task(task_id, self._printer(str(spec.get("printer") or "")), preview, documents, connection)
        self._accept(task)
        answer: dict[str, Any] = {"taskID": task_id}
        if preview:
            answer["previewURL"] = f"http://{self.host}:{self.port}/preview/{task_id}"
        return answer

    def _accept(self, task: Task) -> None:
        with self._lock:
            known = task.task_id in self._tasks
            if not known:
                known = bool(
                    self.world.print_records(
                        component=self.flavour.name, task_id=task.task_id, include_previews=True
                    )
                )
            if known:
                raise Refused(f"taskID重复: {task.task_id}")
            self._tasks[task.task_id] = task
        self._queue.put(task)

    # --- WeChat dialect [GUESS beyond the print request]

    def _answer_wechat(self, request: dict[str, Any], connection: ServerConnection) -> dict[str, Any]:
        command, request_id = str(request.get("command") or ""), str(request.get("requestID") or "")
        head = {"command": command, "requestID": request_id}
        try:
            if not command or not request_id:
                raise Refused("缺少command或requestID")
            if command == "getPrinterList":
                settings = self.settings()
                printers = [
                    {"name": n, "status": 2 if n in settings.paper_out else 1} for n in settings.printers
                ]
                return {**head, "errcode": 0, "errmsg": "ok", "printerList": printers}
            if command != "print":
                raise Refused(f"不支持的指令: {command}")
            if str(request.get("version") or "") != "2.0":
                raise Refused("version必须为2.0")
            tasks = request.get("taskList")
            if not isinstance(tasks, list) or not tasks:
                raise Refused("taskList不能为空")
            printer = self._printer(str(request.get("printer") or ""))
            accepted = []
            for item in tasks:
                if not isinstance(item, dict) or not item.get("taskID") or not item.get("printInfo"):
                    raise Refused("每个任务都需要taskID和printInfo")
            for item in tasks:
                contents: list[Any] = [{"printInfo": item["printInfo"]}]
                custom = item.get("customInfo")
                if custom is not None:
                    custom = dict(custom) if isinstance(custom, dict) else custom
                    if isinstance(custom, dict) and "templateUrl" in custom:
                        custom["templateURL"] = custom.pop("templateUrl")
                    contents.append(custom)
                document = {"documentID": str(item["taskID"]), "contents": contents}
                self._accept(Task(str(item["taskID"]), printer, False, [document], connection))
                accepted.append({"taskID": str(item["taskID"]), "errcode": 0, "errmsg": "ok"})
            return {**head, "errcode": 0, "errmsg": "ok", "taskList": accepted}
        except Refused as exc:
            return {**head, "errcode": -1, "errmsg": str(exc)}

    # ------------------------------------------------------------------ the spool

    def _spool(self) -> None:
        while True:
            task = self._queue.get()
            if task is None:
                return
            try:
                delay = self.settings().delay_ms / 1000.0
                if delay > 0:
                    time.sleep(delay)
                self._print(task)
            except Exception:  # one bad task must not stop the spool
                log.exception("print component %s failed on task %s", self.flavour.name, task.task_id)

    def _print(self, task: Task) -> None:
        settings = self.settings()
        results = []
        for document in task.documents:
            result = self._check_document(document)
            if result.status == "success" and not task.preview:
                if task.printer in settings.paper_out:
                    result.status, result.msg = "failed", "打印机缺纸"
                elif settings.failure_rate and self._rng.random() < settings.failure_rate:
                    result.status, result.msg = "failed", "打印机异常，请检查打印机"
            results.append(result)
        ok = all(r.status == "success" for r in results)
        status = "rendered" if task.preview and ok else ("printed" if ok else "failed")
        now = time.time()
        self.world.log_print(
            [
                PrintRecord(0, now, self.flavour.name, task.task_id, r.document_id, task.printer, task.preview,
                            r.tracking_no, r.shop_id, "printed" if r.status == "success" else "failed", r.msg, r.custom)
                for r in results
            ]
        )  # fmt: skip
        with self._lock:
            task.results, task.status = results, status
            connection = task.connection
        if connection is None or (status == "failed" and not self.notify_on_task_failure):
            return
        try:
            connection.send(json.dumps(self._notification(task), ensure_ascii=False))
        except ConnectionClosed:
            pass

    def _notification(self, task: Task) -> dict[str, Any]:
        if self.flavour.dialect == "wechat":
            [result] = task.results
            failed = result.status != "success"
            return {"command": "notifyPrintResult", "taskID": task.task_id, "printer": task.printer,
                    "status": "failed" if failed else "printed", "errcode": -1 if failed else 0,
                    "errmsg": result.msg or "ok"}  # fmt: skip
        body: dict[str, Any] = {
            "cmd": "notifyPrintResult", "printer": task.printer, "taskID": task.task_id, "taskStatus": task.status,
            "printStatus": [{"documentID": r.document_id, "status": r.status, "msg": r.msg, "detail": r.msg} for r in task.results],
        }  # fmt: skip
        if task.preview:
            body["previewURL"] = f"http://{self.host}:{self.port}/preview/{task.task_id}"
        return body

    # ------------------------------------------------------------------ validation

    def _check_document(self, document: dict[str, Any]) -> DocumentResult:
        result = DocumentResult(str(document.get("documentID")), "success")
        platform_items, custom_items = [], []
        for item in document.get("contents") or []:
            if not isinstance(item, dict):
                return self._fail(result, "contents的每一项都必须是对象")
            if any(k in item for k in ("encryptedData", "printInfo", "signature")):
                platform_items.append(item)
            elif "templateURL" in item or "data" in item:
                custom_items.append(item)
            else:
                return self._fail(result, "无法识别的contents项")
        if len(platform_items) != 1:
            return self._fail(result, "每张面单需要且只能有一份平台打印数据")
        for custom in custom_items:
            if not isinstance(custom.get("templateURL"), str) or not custom["templateURL"]:
                return self._fail(result, "自定义区缺少templateURL")
            if not isinstance(custom.get("data"), dict):
                return self._fail(result, "自定义区data必须是对象")
            result.custom = {"templateURL": custom["templateURL"], "data": custom["data"]}
        try:
            result.shop_id, result.tracking_no = self._check_print_data(platform_items[0])
        except Refused as exc:
            return self._fail(result, str(exc))
        return result

    @staticmethod
    def _fail(result: DocumentResult, message: str) -> DocumentResult:
        result.status, result.msg = "failed", message
        return result

    def _check_print_data(self, item: dict[str, Any]) -> tuple[str, str]:
        """``(shop_id, tracking_no)`` of genuine, current print data; ``Refused`` otherwise."""
        if self.flavour.dialect == "wechat":
            blob = item.get("printInfo")
            if not isinstance(blob, str) or not blob:
                raise Refused("缺少printInfo")
        else:
            data, signature = item.get("encryptedData"), item.get("signature")
            if not isinstance(data, str) or not data or not isinstance(signature, str) or not signature:
                raise Refused("缺少encryptedData或signature")
            if signature != self.world.vault.mac(data):
                raise Refused("打印数据验签失败")
            blob = data
            try:  # Kuaishou's printData is a JSON object whose encryptedData is the sealed part
                wrapped = json.loads(data)
            except ValueError:
                wrapped = None
            if isinstance(wrapped, dict) and isinstance(wrapped.get("encryptedData"), str):
                blob = wrapped["encryptedData"]
        shop_id, content = _opened_content(self.world, blob)
        tracking_no = _tracking_no(content)
        waybill = self.world.get_waybill(tracking_no) if tracking_no else None
        if waybill is None or waybill.shop_id != shop_id:
            raise Refused("运单号不存在")
        if waybill.status != "issued":
            raise Refused(f"运单号{tracking_no}已取消")
        shop = self.world.get_shop(shop_id)
        if shop is None or shop.platform != self.flavour.platform:
            raise Refused("不是本平台的电子面单")
        return shop_id, tracking_no


def start_components(
    world: World, *, host: str = "127.0.0.1", ports: dict[str, int] | None = None, seed: int = 0
) -> dict[str, PrintComponent]:
    """Start one component per flavour (``ports``: flavour → port, 0 = free; missing = default)."""
    components = {}
    for name in FLAVOURS:
        port = (ports or {}).get(name)
        component = PrintComponent(world, name, host=host, port=port, seed=seed)
        component.start()
        components[name] = component
    return components
