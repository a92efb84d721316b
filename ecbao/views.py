from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect, render

from tenants.accounts.permissions import capability_required, has_capability


def root(request):
    if not request.user.is_authenticated:
        return redirect("accounts:login")
    if has_capability(request.user, "supplier.portal"):
        return redirect("accounts:supplier_home")
    return home(request)


@capability_required("dashboard.view")
def home(request):
    return render(request, "dashboard/home.html")


def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok", "schema": connection.schema_name})
