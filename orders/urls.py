from django.urls import path

from orders import views

app_name = "orders"

urlpatterns = [
    path("", views.order_list, name="list"),
    path("bulk/", views.bulk_action, name="bulk"),
    path("ingestion/retry/", views.ingestion_retry, name="ingestion_retry"),
    path("ingestion/retry/<str:retry_id>/", views.ingestion_retry_status, name="ingestion_retry_status"),
    path("export/", views.export_start, name="export"),
    path("export/<str:export_id>/", views.export_status, name="export_status"),
    path("export/<str:export_id>/download/", views.export_download, name="export_download"),
    path("<int:order_id>/", views.order_detail, name="detail"),
    path("<int:order_id>/split/", views.order_split, name="split"),
    path("<int:order_id>/merge/", views.order_merge, name="merge"),
    path(
        "<int:order_id>/fulfilments/<int:fulfilment_id>/unmerge/",
        views.fulfilment_unmerge,
        name="unmerge",
    ),
    path("<int:order_id>/receiver/<str:field>/", views.receiver_reveal, name="receiver_reveal"),
    path("<int:order_id>/<slug:action>/", views.order_action, name="action"),
]
