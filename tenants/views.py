from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render

from tenants import services
from tenants.forms import SignupForm
from tenants.models import Tenant


def signup(request):
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            created = services.create_tenant(
                slug=data["slug"],
                name=data["name"],
                owner_username=data["username"],
                owner_password=data["password"],
                owner_email=data["email"],
            )
        except ValidationError as exc:
            for field, errors in getattr(exc, "error_dict", {None: exc.error_list}).items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
        else:
            return redirect("signup_done", slug=created.tenant.slug)
    return render(request, "tenants/signup.html", {"form": form})


def signup_done(request, slug):
    tenant = get_object_or_404(Tenant, slug=slug)
    return render(
        request,
        "tenants/signup_done.html",
        {"tenant": tenant, "login_url": services.tenant_url(tenant, "/accounts/login/")},
    )
