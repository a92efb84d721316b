from django.urls import path

from tenants.accounts import views

app_name = "accounts"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("password/done/", views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("staff/", views.staff, name="staff"),
    path("staff/<int:user_id>/", views.staff_member, name="staff_member"),
    path("invite/<str:token>/", views.accept_invitation, name="accept_invitation"),
    path("tokens/", views.api_tokens, name="api_tokens"),
    path("tokens/<str:digest>/revoke/", views.api_token_revoke, name="api_token_revoke"),
    path("supplier/", views.supplier_home, name="supplier_home"),
]
