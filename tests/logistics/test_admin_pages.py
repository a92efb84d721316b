"""Shipping settings pages: carrier rules (list by priority, create/edit/enable/disable/delete,
refusals), sender addresses (one default), waybill accounts with balances, the write-back queue
and the print history — as the roles see them."""

from __future__ import annotations

import pytest

from channels.models import Store
from logistics import configuration, services
from logistics.models import CarrierRule, Parcel, PrintRecord, SenderAddress, WaybillAccount, WriteBack
from orders import services as orders
from tenants.accounts.models import Role
from tests.conftest import make_user
from tests.orders.conftest import channel_order, receiver

PASSWORD = "Staff-pass-2026"


@pytest.fixture
def as_role(alpha, alpha_client):
    def login(role: str):
        make_user(alpha, f"ship-{role}", role, PASSWORD)
        response = alpha_client.post("/accounts/login/", {"username": f"ship-{role}", "password": PASSWORD})
        assert response.status_code == 302
        return alpha_client

    return login


@pytest.fixture
def shops(in_alpha, store):
    other = Store.objects.create(platform="wechat", platform_shop_id="wx-9", name="微信小店", app_key="k2")
    return store, other


def account(store, carrier="zto", **kw) -> WaybillAccount:
    return WaybillAccount.objects.create(
        store=store,
        carrier=carrier,
        platform_carrier_code=carrier.upper(),
        branch_code=kw.pop("branch_code", "B1"),
        branch_name=kw.pop("branch_name", "杭州西湖网点"),
        **kw,
    )


def rule_post(**overrides) -> dict:
    data = {
        "name": "浙江走中通",
        "priority": "10",
        "enabled": "on",
        "carrier": "zto",
        "provinces": "浙江 江苏、上海市",
        "min_weight_g": "",
        "max_weight_g": "",
        "merchant_codes": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# --- carrier rules ----------------------------------------------------------------------------------


def test_rules_are_created_through_the_form_and_listed_by_priority(shops, as_role):
    store, other = shops
    zto = account(store, "zto", available=1234)
    client = as_role(Role.OPERATOR)

    response = client.post(
        "/shipping/settings/rules/new/",
        rule_post(store_ids=[str(store.pk)], account=str(zto.pk), max_weight_g="3000"),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    response = client.post(
        "/shipping/settings/rules/new/",
        rule_post(name="重货走德邦", priority="5", carrier="deppon", provinces=""),
    )
    assert response.status_code == 302

    first = CarrierRule.objects.get(name="浙江走中通")
    assert first.provinces == ["浙江省", "江苏省", "上海市"]  # short names completed
    assert (first.store_ids, first.account, first.max_weight_g) == ([store.pk], zto, 3000)

    page = client.get("/shipping/settings/rules/")
    assert page.status_code == 200
    html = page.content.decode()
    assert [r.name for r in page.context["rules"]] == ["重货走德邦", "浙江走中通"]
    assert "快递策略" in html and "德邦快递" in html and "中通快递" in html
    table = html[html.index('data-testid="rules-table"') :]
    assert table.index("重货走德邦") < table.index("浙江走中通")


def test_rule_form_refuses_what_cannot_work_and_saves_nothing(shops, as_role):
    store, other = shops
    foreign = account(other, "zto")
    yunda = account(store, "yunda")
    client = as_role(Role.WAREHOUSE)

    bad = client.post(
        "/shipping/settings/rules/new/",
        rule_post(min_weight_g="5000", max_weight_g="1000", provinces="浙江 火星", store_ids=[str(store.pk)]),
    )
    assert bad.status_code == 400
    errors = bad.context["form"].errors
    assert errors["max_weight_g"] == ["最大重量小于最小重量。"]
    assert errors["provinces"] == ["“火星”不是省份。"]

    unknown_carrier = client.post("/shipping/settings/rules/new/", rule_post(carrier="dhl"))
    assert unknown_carrier.status_code == 400 and "carrier" in unknown_carrier.context["form"].errors

    # the account belongs to a shop the rule does not name / is of another carrier / no shop named
    for post, message in (
        (rule_post(store_ids=[str(store.pk)], account=str(foreign.pk)), "此账户所属店铺不在规则中。"),
        (rule_post(store_ids=[str(store.pk)], account=str(yunda.pk)), "此账户是韵达快递的，不是中通快递的。"),
        (
            rule_post(account=str(yunda.pk), carrier="yunda"),
            "电子面单账户属于一个店铺：请在规则中选择该店铺。",
        ),
    ):
        response = client.post("/shipping/settings/rules/new/", post)
        assert response.status_code == 400
        assert message in response.context["form"].errors["account"]
    assert not CarrierRule.objects.exists()

    with pytest.raises(configuration.ValidationError) as refused:
        configuration.save_carrier_rule(name="x", carrier="zto", store_ids=[999999])
    assert "store_ids" in refused.value.message_dict


def test_rule_edit_toggle_and_delete(shops, as_role):
    store, _other = shops
    zto = account(store)
    rule = configuration.save_carrier_rule(name="默认中通", carrier="zto", store_ids=[store.pk], account=zto)
    client = as_role(Role.OWNER)

    form = client.get(f"/shipping/settings/rules/{rule.pk}/")
    assert form.status_code == 200 and form.context["form"].initial["account"] == zto
    response = client.post(
        f"/shipping/settings/rules/{rule.pk}/",
        rule_post(
            name="默认中通", priority="20", store_ids=[str(store.pk)], account=str(zto.pk), provinces=""
        ),
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.priority, rule.provinces) == (20, [])

    assert client.post(f"/shipping/settings/rules/{rule.pk}/toggle/").status_code == 302
    rule.refresh_from_db()
    assert rule.enabled is False
    # the platform stopped listing the account: the rule cannot be switched back on
    WaybillAccount.objects.filter(pk=zto.pk).update(is_active=False)
    response = client.post(f"/shipping/settings/rules/{rule.pk}/toggle/", follow=True)
    rule.refresh_from_db()
    assert rule.enabled is False
    assert "不能启用" in response.content.decode()

    assert client.post(f"/shipping/settings/rules/{rule.pk}/delete/").status_code == 302
    assert not CarrierRule.objects.filter(pk=rule.pk).exists()


def test_roles_read_or_change_rules(shops, as_role):
    store, _other = shops
    rule = configuration.save_carrier_rule(name="中通", carrier="zto")
    client = as_role(Role.VIEWER)
    page = client.get("/shipping/settings/rules/")
    assert page.status_code == 200 and 'data-testid="rule-new"' not in page.content.decode()
    assert client.get("/shipping/settings/rules/new/").status_code == 403
    assert client.post(f"/shipping/settings/rules/{rule.pk}/delete/").status_code == 403
    assert client.post(f"/shipping/settings/rules/{rule.pk}/toggle/").status_code == 403
    assert CarrierRule.objects.get(pk=rule.pk).enabled


# --- sender addresses -------------------------------------------------------------------------------


def sender_post(**overrides) -> dict:
    data = {
        "name": "王仓管",
        "mobile": "0571-8888 6666",
        "province": "浙江",
        "city": "杭州市",
        "district": "余杭区",
        "street": "",
        "detail": "仓前街道 1 号仓",
    }
    data.update(overrides)
    return data


def test_one_default_sender(in_alpha, as_role):
    client = as_role(Role.WAREHOUSE)
    assert client.post("/shipping/settings/senders/new/", sender_post()).status_code == 302
    assert client.post("/shipping/settings/senders/new/", sender_post(name="李仓管")).status_code == 302
    first, second = SenderAddress.objects.order_by("id")
    assert (first.is_default, second.is_default) == (True, False)  # the first one is the default
    assert first.province == "浙江省"

    assert client.post(f"/shipping/settings/senders/{second.pk}/default/").status_code == 302
    assert list(SenderAddress.objects.filter(is_default=True)) == [second]
    # saving with "default" ticked moves it back
    response = client.post(f"/shipping/settings/senders/{first.pk}/", sender_post(make_default="on"))
    assert response.status_code == 302
    assert list(SenderAddress.objects.filter(is_default=True).values_list("pk", flat=True)) == [first.pk]

    page = client.get("/shipping/settings/senders/").content.decode()
    assert page.count('data-testid="sender-default"') == 1 and "发件地址" in page

    # deleting the default promotes the oldest remaining address
    assert client.post(f"/shipping/settings/senders/{first.pk}/delete/").status_code == 302
    assert list(SenderAddress.objects.filter(is_default=True)) == [second]
    assert configuration.default_sender() == second


def test_sender_form_refuses_a_bad_phone_and_province(in_alpha, as_role):
    client = as_role(Role.OPERATOR)
    response = client.post("/shipping/settings/senders/new/", sender_post(mobile="call me", province="外省"))
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors["mobile"] == ["请输入电话号码（7 到 20 位数字）。"]
    assert errors["province"] == ["“外省”不是省份。"]
    assert not SenderAddress.objects.exists()


# --- waybill accounts, write-backs, print history -----------------------------------------------------


def test_waybill_accounts_page_shows_balances_per_shop(shops, as_role):
    store, other = shops
    account(store, "zto", available=88, allocated=1000, account_id="ACC-1")
    account(store, "sf", branch_code="S1", available=None, is_active=False)
    client = as_role(Role.VIEWER)
    page = client.get("/shipping/settings/accounts/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "电子面单账户" in html and "ACC-1" in html and "中通快递" in html
    assert html.count('data-testid="account-row"') == 2
    assert "不再列出" in html  # the account the platform stopped listing stays visible
    assert 'data-testid="accounts-sync"' not in html  # a viewer cannot sync
    assert client.post(f"/shipping/settings/accounts/{store.pk}/sync/").status_code == 403


def _parcel(store, oid: str, tracking_no: str) -> Parcel:
    order = orders.ingest_channel_order(store=store, co=channel_order(oid=oid, receiver=receiver(f"r-{oid}")))
    services.ensure_parcels()
    parcel = Parcel.objects.filter(lines__order_line__order=order).distinct().get()
    Parcel.objects.filter(pk=parcel.pk).update(
        tracking_no=tracking_no, carrier="zto", status=Parcel.Status.SHIPPED
    )
    parcel.refresh_from_db()
    return parcel


def test_write_back_queue_shows_failures_with_their_errors(store, skus, as_role):
    W = WriteBack.Status
    rows = {}
    for i, status in enumerate((W.GIVEN_UP, W.FAILED, W.PENDING, W.ACCEPTED)):
        parcel = _parcel(store, f"WB{i}", f"7300000000{i}")
        order = parcel.lines.first().order_line.order
        rows[status] = WriteBack.objects.create(
            parcel=parcel,
            order=order,
            key=f"wb-{i}",
            carrier_code="zhongtong",
            tracking_no=parcel.tracking_no,
            status=status,
            attempts=5 if status == W.GIVEN_UP else 1,
            last_error="平台拒绝：运单号与快递公司不匹配" if status == W.GIVEN_UP else "",
        )
    client = as_role(Role.WAREHOUSE)
    page = client.get("/shipping/write-backs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert [wb.status for wb in page.context["page"].rows] == [W.FAILED, W.GIVEN_UP]  # newest first
    assert "平台拒绝：运单号与快递公司不匹配" in html and "回传队列" in html
    assert dict((v, n) for v, _l, n in page.context["tabs"]) == {
        "attention": 2,
        "waiting": 1,
        "accepted": 1,
        "all": 4,
    }
    accepted = client.get("/shipping/write-backs/?tab=accepted").context["page"].rows
    assert [wb.pk for wb in accepted] == [rows[W.ACCEPTED].pk]
    found = client.get("/shipping/write-backs/?tab=all&q=WB2").context["page"].rows
    assert [wb.pk for wb in found] == [rows[W.PENDING].pk]
    assert client.post("/shipping/write-backs/retry/", {}).status_code == 302  # nothing ticked: a message


def test_write_back_queue_shows_the_platforms_view_beside_ecbaos(store, skus, as_role):
    """The numbers the platform listed when the sender last read the order, with whether ecbao's
    number is among them (the sender reads it after every acceptance and unknown outcome)."""
    from django.utils import timezone

    W = WriteBack.Status
    cases = {
        "agrees": (["7300000000A", "SF1"], True),
        "differs": (["SF9"], False),
        "unread": (None, None),
    }
    for i, (name, (numbers, _agrees)) in enumerate(cases.items()):
        parcel = _parcel(store, f"PV{i}", "7300000000A" if name == "agrees" else f"730000000{i}X")
        WriteBack.objects.create(
            parcel=parcel,
            order=parcel.lines.first().order_line.order,
            key=f"pv-{i}",
            carrier_code="zhongtong",
            tracking_no=parcel.tracking_no,
            status=W.ACCEPTED,
            platform_packages=[{"tracking_no": n, "lines": []} for n in numbers or ()],
            platform_checked_at=timezone.now() if numbers is not None else None,
        )
    page = as_role(Role.VIEWER).get("/shipping/write-backs/?tab=accepted")
    html = page.content.decode()
    rows = {wb.key: wb for wb in page.context["page"].rows}
    assert [rows[f"pv-{i}"].platform_agrees for i in range(3)] == [True, False, None]
    assert html.count('data-agrees="yes"') == 1 and html.count('data-agrees="no"') == 1
    assert html.count('data-agrees="unknown"') == 1
    assert "平台显示" in html and "7300000000A, SF1" in html and "SF9" in html and "尚未读取" in html


def test_print_history_filters(store, skus, as_role):
    parcel = _parcel(store, "PR1", "73000000100")
    other = _parcel(store, "PR2", "73000000200")
    PrintRecord.objects.create(parcel=parcel, kind="component", status="printed", printer="得力 DL-888")
    PrintRecord.objects.create(
        parcel=parcel, kind="component", status="failed", is_reprint=True, reason="卡纸", error="缺纸"
    )
    PrintRecord.objects.create(parcel=other, kind="pdf", status="printed")
    client = as_role(Role.VIEWER)

    def rows(query=""):
        response = client.get(f"/shipping/prints/{query}")
        assert response.status_code == 200
        return [(r.parcel_id, r.status, r.is_reprint) for r in response.context["page"].rows]

    assert len(rows()) == 3
    assert rows("?reprint=1") == [(parcel.pk, "failed", True)]
    assert rows("?q=73000000200") == [(other.pk, "printed", False)]
    assert rows("?kind=component&status=printed") == [(parcel.pk, "printed", False)]
    assert rows("?since=2000-01-01&until=2000-01-02") == []
    assert rows("?status=nonsense") != []  # an invalid filter is ignored, not fatal
    assert "卡纸" in client.get("/shipping/prints/").content.decode()


def test_retry_puts_given_up_write_backs_back_in_the_queue(store, skus, as_role):
    W = WriteBack.Status
    parcel = _parcel(store, "RT1", "73000000300")
    order = parcel.lines.first().order_line.order
    given_up = WriteBack.objects.create(
        parcel=parcel,
        order=order,
        key="wb-rt1",
        carrier_code="zhongtong",
        tracking_no=parcel.tracking_no,
        status=W.GIVEN_UP,
        attempts=8,
        last_error="平台超时",
    )
    client = as_role(Role.WAREHOUSE)
    response = client.post("/shipping/write-backs/retry/", {"ids": [str(given_up.pk)]}, follow=True)
    assert response.status_code == 200
    assert "1 条回传将重新发送" in response.content.decode()
    given_up.refresh_from_db()
    assert (given_up.status, given_up.attempts) == (W.PENDING, 0)


# --- against the sandbox over HTTP -----------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    from tests.logistics.waybill_world import start_sandbox

    server = start_sandbox(tmp_path_factory.mktemp("admin-pages") / "world.sqlite3", buyers=10)
    yield server
    server.stop()
    server.world.close()


def test_sync_button_reads_the_shop_accounts_and_balances(sandbox, in_alpha, as_role):
    from tests.logistics.waybill_world import connect_shops

    shops = connect_shops(sandbox)
    store = shops.stores["douyin"]
    WaybillAccount.objects.filter(store=store).delete()
    account = shops.world.waybill_accounts(shops.shop_ids["douyin"])[0]
    shops.world.create_waybill_account(
        shop_id=account.shop_id,
        carrier=account.carrier,
        netsite_code=account.netsite_code,
        netsite_name=account.netsite_name,
        available=4321,
        sender=account.sender,
    )
    client = as_role(Role.OPERATOR)
    response = client.post(f"/shipping/settings/accounts/{store.pk}/sync/", follow=True)
    assert response.status_code == 200
    assert f"已读取 {store.name} 的 3 个电子面单账户" in response.content.decode()
    assert WaybillAccount.objects.filter(store=store, is_active=True).count() == 3
    assert WaybillAccount.objects.filter(store=store, available=4321).exists()
    assert "4321" in client.get("/shipping/settings/accounts/").content.decode()
