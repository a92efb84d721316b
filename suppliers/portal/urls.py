"""The supplier portal, under /supplier/ (namespace ``supplier_portal``): supplier users only."""

from django.urls import path

from suppliers.portal import views

app_name = "supplier_portal"

urlpatterns = [
    path("", views.dispatch_list, name="list"),
    path("bulk/", views.bulk, name="bulk"),
    path("batches/<int:batch_id>/", views.batch_status, name="batch"),
    path("batches/<int:batch_id>/download/", views.batch_download, name="batch_download"),
    path("print/jobs/", views.print_jobs, name="print_jobs"),
    path("print/result/", views.print_result, name="print_result"),
    path("dispatches/<int:dispatch_id>/", views.dispatch_detail, name="detail"),
    path("dispatches/<int:dispatch_id>/tracking/", views.dispatch_tracking, name="tracking"),
    path("dispatches/<int:dispatch_id>/acknowledge/", views.dispatch_acknowledge, name="acknowledge"),
    path("dispatches/<int:dispatch_id>/cancel/", views.dispatch_confirm_cancel, name="confirm_cancel"),
    path("dispatches/<int:dispatch_id>/reveal/<str:field>/", views.receiver_reveal, name="reveal"),
    path("import/", views.import_tracking, name="import"),
    path("import/template.xlsx", views.import_template, name="import_template"),
    path("statement/", views.statement, name="statement"),
    path("api/", views.api_tokens, name="api"),
    path("api/<str:digest>/revoke/", views.api_token_revoke, name="api_revoke"),
]
