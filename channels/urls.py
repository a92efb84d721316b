from django.urls import path

from channels import views

app_name = "channels"

urlpatterns = [
    path("", views.shop_list, name="shops"),
    path("<int:store_id>/row/", views.shop_row, name="shop_row"),
    path("<int:store_id>/sync/", views.shop_sync, name="shop_sync"),
    path("<int:store_id>/disconnect/", views.shop_disconnect, name="shop_disconnect"),
    path("connect/self-use/", views.shop_connect_self_use, name="shop_connect_self_use"),
    path("connect/<str:platform>/", views.shop_connect, name="shop_connect"),
    path("connect/<str:platform>/done/", views.shop_connect_done, name="shop_connect_done"),
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/<int:message_id>/retry/", views.inbox_retry, name="inbox_retry"),
]
