"""Merchant pages of the suppliers app, under /suppliers/ (namespace ``suppliers``).

Each part adds its own lines: suppliers and their SKUs (views_admin), routing rules and the
exception queue (views_rules), dispatches and performance (views_dispatch)."""

from django.urls import path

from suppliers import views_admin, views_dispatch, views_rules

app_name = "suppliers"

urlpatterns: list = []
urlpatterns += [  # views_admin: suppliers, their SKUs, stock and users; the public invitation page
    path("", views_admin.supplier_list, name="list"),
    path("new/", views_admin.supplier_create, name="create"),
    path("<int:supplier_id>/", views_admin.supplier_detail, name="detail"),
    path("<int:supplier_id>/edit/", views_admin.supplier_edit, name="edit"),
    path("<int:supplier_id>/status/", views_admin.supplier_status, name="status"),
    path("<int:supplier_id>/skus/", views_admin.sku_save, name="sku_save"),
    path("<int:supplier_id>/skus/<int:sku_id>/remove/", views_admin.sku_remove, name="sku_remove"),
    path("<int:supplier_id>/skus/import/", views_admin.sku_import, name="sku_import"),
    path("<int:supplier_id>/skus/export.xlsx", views_admin.sku_export, name="sku_export"),
    path("<int:supplier_id>/stock/", views_admin.stock_report, name="stock_report"),
    path("<int:supplier_id>/stock/import/", views_admin.stock_import_view, name="stock_import"),
    path("<int:supplier_id>/invitations/", views_admin.invite_create, name="invite_create"),
    path(
        "<int:supplier_id>/invitations/<int:invitation_id>/cancel/",
        views_admin.invite_cancel,
        name="invite_cancel",
    ),
    path("<int:supplier_id>/users/<int:user_id>/", views_admin.user_active, name="user_active"),
    path("templates/skus.xlsx", views_admin.sku_template, name="sku_template"),
    path("templates/stock.xlsx", views_admin.stock_template, name="stock_template"),
    path("invite/<str:token>/", views_admin.accept_invite, name="accept_invite"),
]
urlpatterns += [  # views_rules: routing rules, dry run, the routing exception queue
    path("rules/", views_rules.rule_sets, name="rules"),
    path("rules/new/", views_rules.rule_set_new, name="rule_set_new"),
    path("rules/<int:pk>/", views_rules.rule_set, name="rule_set"),
    path("rules/<int:pk>/activate/", views_rules.rule_set_activate, name="rule_set_activate"),
    path("rules/<int:pk>/delete/", views_rules.rule_set_delete, name="rule_set_delete"),
    path("rules/<int:pk>/dry-run/", views_rules.rule_set_dry_run, name="rule_set_dry_run"),
    path("rules/<int:pk>/rules/new/", views_rules.rule_new, name="rule_new"),
    path("rules/<int:pk>/rules/<int:rule_id>/", views_rules.rule_edit, name="rule_edit"),
    path("rules/<int:pk>/rules/<int:rule_id>/delete/", views_rules.rule_delete, name="rule_delete"),
    path("rules/<int:pk>/rules/<int:rule_id>/move/", views_rules.rule_move, name="rule_move"),
    path("exceptions/", views_rules.exceptions, name="exceptions"),
    path("exceptions/reroute/", views_rules.exceptions_reroute, name="exceptions_reroute"),
]
urlpatterns += [  # views_dispatch: dispatches and supplier performance
    path("dispatches/", views_dispatch.dispatch_list, name="dispatches"),
    path("dispatches/<int:dispatch_id>/", views_dispatch.dispatch_detail, name="dispatch_detail"),
    path("performance/", views_dispatch.performance, name="performance"),
]
