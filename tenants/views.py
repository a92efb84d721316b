from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _

from ecbao.clientip import client_ip
from tenants import services, signup_guard
from tenants.forms import SignupForm
from tenants.models import Tenant

SIGNED_UP_SESSION_KEY = "signed_up_tenant"


def signup(request):
    """Create a workspace; rationed per address and e-mail, with a small sum after a few tries."""
    ip = client_ip(request)
    if signup_guard.address_refused(ip):
        return render(request, "tenants/signup.html", {"refused": True}, status=429)
    challenge = signup_guard.Challenge(request.session) if signup_guard.needs_challenge(ip) else None
    form = SignupForm(request.POST or None, challenge=challenge)
    if request.method == "POST":
        signup_guard.note_attempt(ip)
        if form.is_valid():
            data = form.cleaned_data
            if not signup_guard.reserve_creation(ip, data["email"]):
                form.add_error(
                    None, _("Too many workspaces were created from here or with this e-mail today.")
                )
            else:
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
                    # The confirmation page is for this browser only (it names the company).
                    request.session[SIGNED_UP_SESSION_KEY] = created.tenant.slug
                    return redirect("signup_done", slug=created.tenant.slug)
        form.next_challenge()
    return render(request, "tenants/signup.html", {"form": form})


def signup_done(request, slug):
    """Shown only to the browser session that signed this tenant up; anyone else gets a 404."""
    if request.session.get(SIGNED_UP_SESSION_KEY) != slug:
        raise Http404
    tenant = get_object_or_404(Tenant, slug=slug)
    return render(
        request,
        "tenants/signup_done.html",
        {"tenant": tenant, "login_url": services.tenant_url(tenant, "/accounts/login/")},
    )
