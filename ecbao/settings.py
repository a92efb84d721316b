"""ecbao settings. Every environment-dependent value is read here, through ecbao.env."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from ecbao import env

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("ECBAO_DATA_DIR", BASE_DIR / ".data"))

DEBUG = env.env_bool("DEBUG", default=False)
TESTING = env.env_bool("ECBAO_TESTING", default=False)

DEV_SECRET_KEY = "dev-insecure-ecbao-secret-key-change-me-0123456789abcdefghijklmnop"  # noqa: S105
SECRET_KEY = env.env_str("SECRET_KEY", DEV_SECRET_KEY if (DEBUG or TESTING) else None)
if not (DEBUG or TESTING) and (SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured(
        "SECRET_KEY: production (DEBUG off) refuses the development secret or one shorter than 32 characters"
    )

# Fernet keys for credentials at rest (app secrets, tokens). Dev/test get a fixed key.
_DEV_FIELD_KEY = "ZWNiYW8tZGV2LWZpZWxkLWtleS0wMTIzNDU2Nzg5YWI="
FIELD_ENCRYPTION_KEYS = env.field_encryption_keys(
    "FIELD_ENCRYPTION_KEY", _DEV_FIELD_KEY if (DEBUG or TESTING) else None
)
if not (DEBUG or TESTING) and _DEV_FIELD_KEY.encode() in FIELD_ENCRYPTION_KEYS:
    raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY: production refuses the development key")

ECBAO_BASE_DOMAIN = env.base_domain()
ALLOWED_HOSTS = env.env_list("ALLOWED_HOSTS", [ECBAO_BASE_DOMAIN, f".{ECBAO_BASE_DOMAIN}"])
CSRF_TRUSTED_ORIGINS = env.env_list("CSRF_TRUSTED_ORIGINS", [])
# Public base URL of the web app as reached by browsers (used in OAuth redirects, invite links).
ECBAO_PUBLIC_SCHEME = env.env_str("ECBAO_PUBLIC_SCHEME", "http" if DEBUG or TESTING else "https")
ECBAO_PUBLIC_PORT = env.env_str("ECBAO_PUBLIC_PORT", "8000" if DEBUG else "")

# --- tenancy -------------------------------------------------------------------------------
SHARED_APPS = [
    "django_tenants",
    "tenants",
    # Platform staff (public schema) and every tenant's staff use the same user model,
    # stored per schema: a tenant's users live only in its own schema.
    "tenants.accounts",
    "channels.routing",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_htmx",
    "django.contrib.postgres",
    # The platform sandbox (a development and test tool; its command: sandbox) and the demo wiring
    # (sandbox_demo, demo_catalog: connect a tenant to sandbox shops, seed its catalogue).
    "sandbox",
    "demo",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.admin",
    # Per schema: a tenant's API tokens and its failed-login records stay in its schema.
    "knox",
    "axes",
    "tenants.accounts",
    "channels",
    "inventory",
    "orders",
    "suppliers",
    "logistics",
    "aftersales",
    "finance",
    "scrm",
]
INSTALLED_APPS = list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
PUBLIC_SCHEMA_URLCONF = "ecbao.urls_public"
ROOT_URLCONF = "ecbao.urls_tenant"
SHOW_PUBLIC_IF_NO_TENANT_FOUND = False
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)
TENANT_CREATION_FAKES_MIGRATIONS = False
ORIGINAL_BACKEND = "django.db.backends.postgresql"
# Set search_path once per connection and schema switch, not before every query.
TENANT_LIMIT_SET_CALLS = True

AUTH_USER_MODEL = "accounts.User"

MIDDLEWARE = [
    "django_tenants.middleware.main.TenantMainMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "ecbao.middleware.ChineseFirstLocaleMiddleware",
    "ecbao.middleware.InputGuardMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "ecbao.context_processors.shell",
            ],
            "builtins": ["ecbao.templatetags.ecbao"],
        },
    }
]

WSGI_APPLICATION = "ecbao.wsgi.application"

# --- data stores ---------------------------------------------------------------------------
DATABASES = {"default": env.database_config()}
DATABASES["default"]["ENGINE"] = "ecbao.dbbackend"
if TESTING:  # live-server and worker threads must not keep connections past a request
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    if os.environ.get("ECBAO_TEST_DB_NAME"):  # concurrent test runs on one server use their own database
        DATABASES["default"]["TEST"] = {"NAME": os.environ["ECBAO_TEST_DB_NAME"]}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.redis_url()
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Every key carries the tenant's schema: no cache entry crosses a tenant.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        "KEY_PREFIX": env.env_str("ECBAO_CACHE_PREFIX", "ecbao"),
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not (DEBUG or TESTING)
CSRF_COOKIE_SECURE = not (DEBUG or TESTING)

# Tenant-aware file storage: each tenant's files under MEDIA_ROOT/<schema>/.
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", DATA_DIR / "media"))
MEDIA_URL = "/media/"
MULTITENANT_RELATIVE_MEDIA_ROOT = "%s"
STORAGES = {
    "default": {"BACKEND": "ecbao.storage.TenantFileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if (DEBUG or TESTING)
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = DEBUG or TESTING

# --- auth ----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "accounts:login"
# Login throttling (tenants/accounts/throttle.py): a (username, address) pair locks after
# AXES_FAILURE_LIMIT failures for AXES_COOLOFF_TIME (django-axes, attempts stored per schema);
# an address that failed LOGIN_ADDRESS_FAILURE_LIMIT times in the window is refused outright.
AUTHENTICATION_BACKENDS = [
    "tenants.accounts.throttle.AddressLimitBackend",
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "ecbao.clientip.client_ip"
AXES_LOCKOUT_CALLABLE = "tenants.accounts.throttle.lockout_response"
AXES_VERBOSE = False
LOGIN_ADDRESS_FAILURE_LIMIT = env.env_int("ECBAO_LOGIN_ADDRESS_FAILURE_LIMIT", 30, minimum=1)
LOGIN_ADDRESS_WINDOW_SECONDS = 60 * 60
# The client address behind reverse proxies (ecbao/clientip.py): their networks, or their number.
ECBAO_TRUSTED_PROXIES = env.proxy_networks("ECBAO_TRUSTED_PROXIES")
ECBAO_TRUSTED_PROXY_COUNT = env.env_int("ECBAO_TRUSTED_PROXY_COUNT", 0)

# Sign-up rationing per client address and e-mail (tenants/signup_guard.py).
SIGNUP_CHALLENGE_AFTER = 3  # attempts an hour before the form asks a small sum
SIGNUP_ADDRESS_ATTEMPTS = 20  # attempts an hour, then the address is refused
SIGNUP_CREATIONS_PER_ADDRESS = 3  # workspaces a day
SIGNUP_CREATIONS_PER_EMAIL = 2  # workspaces a day

# API tokens (django-rest-knox): stored as SHA-512 digests, expiring, sent as `Token <key>`.
KNOX_TOKEN_MODEL = "accounts.ApiToken"  # noqa: S105 - a model name
API_TOKEN_LIFETIME_DAYS = env.env_int("ECBAO_API_TOKEN_DAYS", 90, minimum=1)
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=API_TOKEN_LIFETIME_DAYS),
    "TOKEN_PREFIX": "ecb_",
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
}
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# --- i18n ----------------------------------------------------------------------------------
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "Asia/Shanghai"  # shown to people; stored values are UTC (USE_TZ)
USE_TZ = True

# --- API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.accounts.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.accounts.permissions.TenantStaffAPIPermission"],
    "DEFAULT_PARSER_CLASSES": ["ecbao.api.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "ecbao.api.KeysetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["ecbao.api.FilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "ecbao.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {"user": "6000/hour", "anon": "600/hour"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ecbao API",
    "DESCRIPTION": "REST API of one ecbao tenant. Authenticate with `Authorization: Token <key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Several models have a "status"; name the orders' one instead of a generated Status…Enum.
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "orders.models.OrderStatus",
        "ParcelStatusEnum": "logistics.models.Parcel.Status",
        "ParcelTrackingStatusEnum": "logistics.models.Parcel.Tracking",
        "WaybillStatusEnum": "logistics.models.Waybill.Status",
        "WriteBackStatusEnum": "logistics.models.WriteBack.Status",
        "ShipBatchStatusEnum": "logistics.models.ShipBatch.Status",
        "DispatchStatusEnum": "suppliers.models.Dispatch.Status",
        "SupplierStatusEnum": "suppliers.models.Supplier.Status",
        "RuleSetStatusEnum": "suppliers.models.RuleSet.Status",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "ecbao.api.error_responses_hook",
    ],
}

# --- Celery --------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = env.env_str("ECBAO_CELERY_QUEUE", "ecbao")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, "global_keyprefix": ""}
CELERY_BEAT_SCHEDULER = "tenant_schemas_celery.scheduler.TenantAwarePersistentScheduler"
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

# --- platforms -----------------------------------------------------------------------------
# API base URLs (the real gateways in production, the sandbox in development and tests) and
# this deployment's own developer apps. Only base URLs differ between sandbox and production.
CHANNEL_BASE_URLS = {
    "douyin": env.env_str("ECBAO_DOUYIN_API", "http://127.0.0.1:8601"),
    "kuaishou": env.env_str("ECBAO_KUAISHOU_API", "http://127.0.0.1:8602"),
    "wechat": env.env_str("ECBAO_WECHAT_API", "http://127.0.0.1:8603"),
}
CHANNEL_AUTHORIZE_URLS = {
    "douyin": env.env_str("ECBAO_DOUYIN_AUTHORIZE", CHANNEL_BASE_URLS["douyin"] + "/authorize"),
    "kuaishou": env.env_str("ECBAO_KUAISHOU_AUTHORIZE", CHANNEL_BASE_URLS["kuaishou"] + "/oauth/authorize"),
    "wechat": env.env_str("ECBAO_WECHAT_AUTHORIZE", CHANNEL_BASE_URLS["wechat"] + "/authorize"),
}

# The platforms' local print components, which the label page's JavaScript reaches over a
# WebSocket on the warehouse PC: their real ports, where the sandbox (`python -m sandbox serve`,
# `make run`) imitates them too; a test with a sandbox on free ports overrides this with
# `SandboxServer.print_urls`. A page that connects adds these to its CSP `connect-src`.
PRINT_COMPONENT_URLS = {
    "douyin": env.env_str("ECBAO_DOUYIN_PRINTER", "ws://127.0.0.1:13888"),
    "kuaishou": env.env_str("ECBAO_KUAISHOU_PRINTER", "ws://127.0.0.1:16888/ks/printer"),
    "wechat": env.env_str("ECBAO_WECHAT_PRINTER", "ws://127.0.0.1:12705"),
}

# --- logging -------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"tenant_context": {"()": "django_tenants.log.TenantContextFilter"}},
    "formatters": {"tenant": {"format": "%(asctime)s %(levelname)s [%(schema_name)s] %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["tenant_context"], "formatter": "tenant"}
    },
    "root": {"handlers": ["console"], "level": env.env_str("LOG_LEVEL", "INFO")},
    # httpx logs request URLs at INFO; Douyin puts access_token and sign in the query string.
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "axes": {"level": "WARNING"},  # one INFO line per sign-in otherwise
    },
}

# --- browser security ---------------------------------------------------------------------
# Content-Security-Policy (django-csp 4): our own origin only. No inline script or style: the
# pages' behaviour is in static/ecbao/app.js, htmx's indicator styles in app.css (htmx-config
# meta tag), the API docs use drf-spectacular's split Swagger view (no inline script).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [SELF],
        "object-src": [NONE],
    }
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

if not (DEBUG or TESTING):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.env_bool("ECBAO_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load-balancer checks over plain HTTP
    # HSTS for the base domain and every tenant subdomain (a year; preload-ready).
    SECURE_HSTS_SECONDS = env.env_int("ECBAO_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.env_bool("ECBAO_HSTS_PRELOAD", True)
