"""URLs served on the public domain (<base domain>): sign-up and platform admin."""

from django.contrib import admin
from django.urls import include, path

from channels import views as channel_views
from ecbao import views
from tenants import views as tenant_views

urlpatterns = [
    path("", tenant_views.signup, name="signup"),
    path("signup/done/<slug:slug>/", tenant_views.signup_done, name="signup_done"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path(
        "hooks/wechat/component/<str:component_appid>/",
        channel_views.component_event_endpoint,
        name="wechat_component_events",
    ),
    path("hooks/<str:platform>/", channel_views.push_endpoint, name="push"),
    path("hooks/<str:platform>/<str:app_key>/", channel_views.push_endpoint, name="push_app"),
    path("oauth/callback/<str:platform>/", channel_views.oauth_callback, name="oauth_callback"),
]

handler400 = "ecbao.views.bad_request"
handler403 = "ecbao.views.permission_denied"
handler404 = "ecbao.views.page_not_found"
handler500 = "ecbao.views.server_error"
