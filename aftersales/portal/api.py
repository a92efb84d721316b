"""The supplier API's after-sales under /api/v1/supplier/after-sales/ (sealed like the rest of
the supplier API: ``suppliers.portal.scope``)."""

urlpatterns: list = []
