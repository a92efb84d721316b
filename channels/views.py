"""Shops and Inbox pages (thin: they call selectors, services and tasks)."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from channels import component, intake, oauth, selectors, services, tasks
from channels.errors import ChannelError
from channels.forms import SelfUseAppForm
from channels.models import InboxMessage, Store, SyncCursor
from channels.types import Platform
from tenants.accounts.permissions import capability_required

logger = logging.getLogger(__name__)

SHOP_NOT_CONNECTED = gettext_noop("This shop could not be connected to this account.")
WECHAT_NEEDS_TICKET = gettext_noop(
    "WeChat platform authorisation opens once WeChat has pushed this deployment's "
    "component_verify_ticket (every 10 minutes). Until then, connect WeChat shops as self-use apps."
)


@capability_required("dashboard.view")
def shop_list(request):
    wechat_app = services.deployment_app(Platform.WECHAT.value)
    wechat_ready = wechat_app is not None and component.ticket_is_fresh(wechat_app)
    return render(
        request,
        "channels/shops.html",
        {
            "stores": selectors.stores_with_sync(),
            # WeChat shops authorised through our third-party platform need the
            # component_verify_ticket WeChat pushes every 10 minutes (channels/component.py): the
            # button shows only while a ticket younger than 12 h is stored; otherwise WeChat shops
            # connect as self-use apps and the page says why.
            "platforms": [
                (
                    p.value,
                    p.label,
                    wechat_ready if p == Platform.WECHAT else services.deployment_app(p.value) is not None,
                )
                for p in Platform
            ],
            "wechat_needs_ticket": wechat_app is not None and not wechat_ready,
            "self_use_form": SelfUseAppForm(),
        },
    )


@capability_required("dashboard.view")
def shop_row(request, store_id):
    store = get_object_or_404(selectors.stores_with_sync(), pk=store_id)
    return render(request, "channels/_shop_row.html", {"store": store})


@require_POST
@capability_required("shops.manage")
def shop_sync(request, store_id):
    store = get_object_or_404(Store, pk=store_id)
    SyncCursor.objects.update_or_create(
        store=store,
        kind=SyncCursor.Kind.ORDERS,
        defaults={"state": SyncCursor.State.RUNNING, "windows_done": 0, "windows_total": 0, "last_error": ""},
    )
    transaction.on_commit(lambda: tasks.pull_store_orders.delay(store.pk))
    return shop_row(request, store_id)


@capability_required("shops.manage")
def shop_connect(request, platform):
    if platform not in [p.value for p in Platform]:
        raise Http404
    wechat_app = services.deployment_app(platform) if platform == Platform.WECHAT else None
    if wechat_app is not None and not component.ticket_is_fresh(wechat_app):
        messages.error(request, _(WECHAT_NEEDS_TICKET))  # the code exchange would fail without it
        return redirect("channels:shops")
    try:
        return redirect(oauth.start(platform=platform, request=request))
    except LookupError as exc:
        messages.error(request, str(exc))
        return redirect("channels:shops")


@require_POST
@capability_required("shops.manage")
def shop_connect_self_use(request):
    form = SelfUseAppForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, _("The self-use app form has errors: %(errors)s") % {"errors": form.errors.as_text()}
        )
        return redirect("channels:shops")
    data = form.cleaned_data
    secrets = {"app_secret": data["app_secret"]}
    if data["platform"] == "wechat":
        secrets.update({"token": data["token"], "aes_key": data["aes_key"]})
    try:
        with transaction.atomic():
            services.register_app(
                platform=data["platform"],
                app_key=data["app_key"],
                secrets=secrets,
                tenant=services.current_tenant(),
            )
            connector = services.unbound_connector(platform=data["platform"], app_key=data["app_key"])
            grant = connector.self_use_token(platform_shop_id=data["platform_shop_id"])
            store = services.connect_store(
                platform=data["platform"],
                app_key=data["app_key"],
                grant=grant,
                auth_mode=Store.AuthMode.SELF_USE,
            )
    except PermissionError:
        messages.error(request, _(SHOP_NOT_CONNECTED))
        return redirect("channels:shops")
    except (ChannelError, NotImplementedError) as exc:
        messages.error(request, _("Could not connect the shop: %(error)s") % {"error": exc})
        return redirect("channels:shops")
    messages.success(request, _("Connected %(name)s.") % {"name": store.name})
    transaction.on_commit(lambda: tasks.pull_store_orders.delay(store.pk))
    return redirect("channels:shops")


@require_POST
@capability_required("shops.manage")
def shop_disconnect(request, store_id):
    store = get_object_or_404(Store, pk=store_id)
    services.disconnect_store(store=store)
    messages.success(request, _("Disconnected %(name)s.") % {"name": store.name})
    return redirect("channels:shops")


@capability_required("dashboard.view")
def inbox(request):
    status = request.GET.get("status", "")
    platform = request.GET.get("platform", "")
    rows = selectors.inbox(status=status, platform=platform)[:200]
    return render(
        request,
        "channels/inbox.html",
        {
            "rows": rows,
            "status": status,
            "platform": platform,
            "counts": selectors.inbox_counts(),
            "statuses": InboxMessage.Status.choices,
            "platforms": [(p.value, p.label) for p in Platform],
        },
    )


@require_POST
@capability_required("shops.manage")
def inbox_retry(request, message_id):
    intake.retry_inbox_message(message_id=message_id)
    message = get_object_or_404(InboxMessage.objects.select_related("store"), pk=message_id)
    return render(request, "channels/_inbox_row.html", {"m": message})


@capability_required("shops.manage")
def shop_connect_done(request, platform):
    """The end of the authorisation flow, in the browser session that started it (the public
    callback sends the merchant here)."""
    code, raw_state = request.GET.get("code", ""), request.GET.get("state", "")
    if not code or not raw_state:
        return HttpResponseBadRequest("missing code or state")
    try:
        store = oauth.finish(request=request, platform=platform, code=code, raw_state=raw_state)
    except signing.BadSignature as exc:
        logger.warning("shop authorisation on %s refused: %s", platform, exc)
        raise PermissionDenied(_("The authorisation link is invalid, expired or used already.")) from exc
    except oauth.ShopNotConnected:
        messages.error(request, _(SHOP_NOT_CONNECTED))
        return redirect("channels:shops")
    except ChannelError as exc:
        logger.warning("shop authorisation failed on %s: %s", platform, exc)
        messages.error(request, _("The platform did not authorise the shop: %(error)s") % {"error": exc})
        return redirect("channels:shops")
    messages.success(request, _("Connected %(name)s.") % {"name": store.name})
    transaction.on_commit(lambda: tasks.pull_store_orders.delay(store.pk))
    return redirect(f"{reverse('channels:shops')}?connected={store.pk}")


# --- public domain -------------------------------------------------------------------------------


@csrf_exempt
def push_endpoint(request, platform, app_key=""):
    """One push URL per platform (optionally per app) on the public domain."""
    if platform not in [p.value for p in Platform]:
        raise Http404
    reply = intake.receive_push(
        platform=platform,
        app_key=app_key,
        method=request.method,
        headers=dict(request.headers),
        query={k: v for k, v in request.GET.items()},
        body=request.body,
    )
    return HttpResponse(reply.body, status=reply.status, content_type=reply.content_type)


@csrf_exempt
def component_event_endpoint(request, component_appid):
    """The WeChat third-party platform's authorisation-event URL (授权事件接收URL), public domain."""
    reply = intake.receive_authorization_event(
        component_appid=component_appid,
        method=request.method,
        headers=dict(request.headers),
        query={k: v for k, v in request.GET.items()},
        body=request.body,
    )
    return HttpResponse(reply.body, status=reply.status, content_type=reply.content_type)


def oauth_callback(request, platform):
    """The platform's redirect (public domain): send the browser on to its tenant's domain,
    where the session that started the flow finishes it (``shop_connect_done``)."""
    code = request.GET.get("code") or request.GET.get("auth_code") or ""
    raw_state = request.GET.get("state", "")
    if not code or not raw_state:
        return HttpResponseBadRequest("missing code or state")
    try:
        return redirect(oauth.finish_url(platform=platform, code=code, raw_state=raw_state))
    except signing.BadSignature as exc:
        raise PermissionDenied("invalid or expired authorisation state") from exc
