"""The supplier portal's 售后 pages under /supplier/aftersales/ (namespace
``supplier_aftersales``): after-sales on the signed-in supplier's dispatches only
(``suppliers.portal.scope``)."""

app_name = "supplier_aftersales"

urlpatterns: list = []
