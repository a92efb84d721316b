"""The supplier portal's 售后 pages under /supplier/aftersales/ (namespace
``supplier_aftersales``): after-sales on the signed-in supplier's dispatches only
(``suppliers.portal.scope``)."""

from django.urls import path

from aftersales.portal import views

app_name = "supplier_aftersales"

urlpatterns = [
    path("", views.after_sale_list, name="list"),
    path("charge-backs/", views.charge_back_list, name="charge_backs"),
    path("<int:after_sale_id>/", views.after_sale_detail, name="detail"),
    path("<int:after_sale_id>/answer/", views.after_sale_answer, name="answer"),
    path("<int:after_sale_id>/evidence/<int:evidence_no>/", views.evidence, name="evidence"),
]
