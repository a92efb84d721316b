"""File storage: each tenant's files under ``MEDIA_ROOT/<schema>/``."""

from __future__ import annotations

from django_tenants.files.storage import TenantFileSystemStorage as _TenantFileSystemStorage


class TenantFileSystemStorage(_TenantFileSystemStorage):
    """django-tenants' storage, forgetting its cached tenant root when ``MEDIA_ROOT`` or
    ``MEDIA_URL`` change (it only does so for ``MULTITENANT_RELATIVE_MEDIA_ROOT``): without
    this, a storage used once keeps writing under the old root after the setting changed."""

    def _clear_cached_properties(self, setting, **kwargs):
        super()._clear_cached_properties(setting, **kwargs)
        if setting in ("MEDIA_ROOT", "MEDIA_URL"):
            self.__dict__.pop("relative_media_root", None)
            self.__dict__.pop("relative_media_url", None)
