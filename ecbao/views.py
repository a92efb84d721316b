from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views import defaults

from ecbao.middleware import error_json, wants_json
from tenants.accounts.permissions import capability_required, has_capability


def root(request):
    if not request.user.is_authenticated:
        return redirect("accounts:login")
    if has_capability(request.user, "supplier.portal"):
        return redirect("supplier_portal:list")
    return home(request)


@capability_required("dashboard.view")
def home(request):
    return render(request, "dashboard/home.html")


def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})  # nothing about the tenant or its schema


# --- error handlers (both URL confs): the JSON envelope under /api/ and /hooks/, a page elsewhere


def bad_request(request, exception=None):
    if wants_json(request):
        return error_json(code="bad_request", message=gettext("Bad request."), http_status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if wants_json(request):
        return error_json(
            code="permission_denied",
            message=gettext("You do not have permission to perform this action."),
            http_status=403,
        )
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception=None):
    if wants_json(request):
        return error_json(code="not_found", message=gettext("Not found."), http_status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if wants_json(request):
        return error_json(code="server_error", message=gettext("Internal server error."), http_status=500)
    return defaults.server_error(request)
