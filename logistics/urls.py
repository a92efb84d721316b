from django.urls import path

from logistics import views, views_admin, views_pack, views_tracking

app_name = "logistics"

urlpatterns = [
    # shipping settings (views_admin)
    path("settings/rules/", views_admin.carrier_rules, name="carrier_rules"),
    path("settings/rules/new/", views_admin.carrier_rule_new, name="carrier_rule_new"),
    path("settings/rules/<int:rule_id>/", views_admin.carrier_rule_edit, name="carrier_rule_edit"),
    path("settings/rules/<int:rule_id>/toggle/", views_admin.carrier_rule_toggle, name="carrier_rule_toggle"),
    path("settings/rules/<int:rule_id>/delete/", views_admin.carrier_rule_delete, name="carrier_rule_delete"),
    path("settings/senders/", views_admin.senders, name="senders"),
    path("settings/senders/new/", views_admin.sender_new, name="sender_new"),
    path("settings/senders/<int:sender_id>/", views_admin.sender_edit, name="sender_edit"),
    path("settings/senders/<int:sender_id>/default/", views_admin.sender_default, name="sender_default"),
    path("settings/senders/<int:sender_id>/delete/", views_admin.sender_delete, name="sender_delete"),
    path("settings/accounts/", views_admin.waybill_accounts, name="waybill_accounts"),
    path(
        "settings/accounts/<int:store_id>/sync/",
        views_admin.waybill_accounts_sync,
        name="waybill_accounts_sync",
    ),
    path("write-backs/", views_admin.write_backs, name="write_backs"),
    path("write-backs/retry/", views_admin.write_backs_retry, name="write_backs_retry"),
    path("prints/", views_admin.print_history, name="print_history"),
    path("manual/", views_admin.manual_entry, name="manual"),
    path("manual/import/", views_admin.manual_import, name="manual_import"),
    path("manual/template.xlsx", views_admin.manual_template, name="manual_template"),
    path("manual/batches/<int:batch_id>/", views_admin.manual_batch, name="manual_batch"),
    path(
        "manual/batches/<int:batch_id>/errors.xlsx",
        views_admin.manual_batch_errors,
        name="manual_batch_errors",
    ),
    # pick lists and the scan-to-verify bench (views_pack)
    path("pick/", views_pack.pick, name="pick"),
    path("verify/", views_pack.verify, name="verify"),
    path("verify/lookup/", views_pack.verify_lookup, name="verify_lookup"),
    path("verify/scan/", views_pack.verify_scan, name="verify_scan"),
    path("verify/by-hand/", views_pack.verify_by_hand, name="verify_by_hand"),
    path("verify/done/", views_pack.verify_done, name="verify_done"),
    path("verify/reset/", views_pack.verify_reset, name="verify_reset"),
    # tracking: a parcel's timeline (fragment), intercepts, exceptions, ship-by (views_tracking)
    path("tracking/", views_tracking.page, name="tracking"),
    path("tracking/parcels/<int:parcel_id>/", views_tracking.timeline, name="tracking_timeline"),
    path("tracking/parcels/<int:parcel_id>/pull/", views_tracking.timeline_pull, name="tracking_pull"),
    path("tracking/intercepts/close/", views_tracking.intercepts_close, name="intercepts_close"),
    # the shipping workbench (views)
    path("", views.workbench, name="workbench"),
    path("bulk/", views.bulk_action, name="bulk"),
    path("batches/<int:batch_id>/", views.batch_status, name="batch"),
    path("batches/<int:batch_id>/download/", views.batch_download, name="batch_download"),
    path("parcels/<int:parcel_id>/prints/", views.parcel_prints, name="parcel_prints"),
    path("print/jobs/", views.print_jobs, name="print_jobs"),
    path("print/result/", views.print_result, name="print_result"),
]
