"""A django-oscar 4.2 shop, set up as Oscar documents it, with django-pjpixel added.

Oscar's part follows its "Building your own shop" guide: its apps and their
dependencies, its middleware, context processors and authentication backend,
haystack's simple backend and ``from oscar.defaults import *``. django-pjpixel's
part is what the README's "django-oscar" section says: the two apps, the
middleware, ``PJPIXEL``, the dashboard entry. The database (PostgreSQL, else
SQLite) and the credentials are the main suite's (``tests/settings.py``).

Run with ``pytest tests/oscar --ds=tests.oscar.settings`` (``make test`` does).
"""

from __future__ import annotations

from oscar.defaults import *  # noqa: F403  # Oscar's documented way to get its defaults

from tests.settings import DATABASES as _DATABASES
from tests.settings import (  # noqa: F401  # tests/services.py reads POSTGRES_UNAVAILABLE
    PASSWORD_HASHERS,
    PJPIXEL,
    POSTGRES_UNAVAILABLE,
    SECRET_KEY,
    SESSION_COOKIE_AGE,
)

DEBUG = False
USE_TZ = True
TIME_ZONE = "Europe/Oslo"
LANGUAGE_CODE = "en"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.oscar.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"  # Oscar's models use AutoField
SITE_ID = 1

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.flatpages",
    "oscar.config.Shop",
    "oscar.apps.analytics.apps.AnalyticsConfig",
    "oscar.apps.checkout.apps.CheckoutConfig",
    "oscar.apps.address.apps.AddressConfig",
    "oscar.apps.shipping.apps.ShippingConfig",
    "oscar.apps.catalogue.apps.CatalogueConfig",
    "oscar.apps.catalogue.reviews.apps.CatalogueReviewsConfig",
    "oscar.apps.communication.apps.CommunicationConfig",
    "oscar.apps.partner.apps.PartnerConfig",
    "oscar.apps.basket.apps.BasketConfig",
    "oscar.apps.payment.apps.PaymentConfig",
    "oscar.apps.offer.apps.OfferConfig",
    "oscar.apps.order.apps.OrderConfig",
    "oscar.apps.customer.apps.CustomerConfig",
    "oscar.apps.search.apps.SearchConfig",
    "oscar.apps.voucher.apps.VoucherConfig",
    "oscar.apps.wishlists.apps.WishlistsConfig",
    "oscar.apps.dashboard.apps.DashboardConfig",
    "oscar.apps.dashboard.reports.apps.ReportsDashboardConfig",
    "oscar.apps.dashboard.users.apps.UsersDashboardConfig",
    "oscar.apps.dashboard.orders.apps.OrdersDashboardConfig",
    "oscar.apps.dashboard.catalogue.apps.CatalogueDashboardConfig",
    "oscar.apps.dashboard.offers.apps.OffersDashboardConfig",
    "oscar.apps.dashboard.partners.apps.PartnersDashboardConfig",
    "oscar.apps.dashboard.pages.apps.PagesDashboardConfig",
    "oscar.apps.dashboard.ranges.apps.RangesDashboardConfig",
    "oscar.apps.dashboard.reviews.apps.ReviewsDashboardConfig",
    "oscar.apps.dashboard.vouchers.apps.VouchersDashboardConfig",
    "oscar.apps.dashboard.communications.apps.CommunicationsDashboardConfig",
    "oscar.apps.dashboard.shipping.apps.ShippingDashboardConfig",
    # Oscar's dependencies.
    "widget_tweaks",
    "haystack",
    "treebeard",
    "sorl.thumbnail",
    "django_tables2",
    # django-pjpixel, and its Oscar adapter.
    "django_pjpixel",
    "django_pjpixel.contrib.oscar",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django_pjpixel.middleware.PjclidMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "oscar.apps.basket.middleware.BasketMiddleware",
    "django.contrib.flatpages.middleware.FlatpageFallbackMiddleware",
]

AUTHENTICATION_BACKENDS = (
    "oscar.apps.customer.auth_backends.EmailBackend",
    "django.contrib.auth.backends.ModelBackend",
)

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.template.context_processors.i18n",
                "django.contrib.messages.context_processors.messages",
                "oscar.apps.search.context_processors.search_form",
                "oscar.apps.checkout.context_processors.checkout",
                "oscar.apps.communication.notifications.context_processors.notifications",
                "oscar.core.context_processors.metadata",
            ],
        },
    }
]

HAYSTACK_CONNECTIONS = {
    "default": {"ENGINE": "haystack.backends.simple_backend.SimpleEngine"},
}
# The simple backend keeps no index, so there is nothing to update when a product is saved.
HAYSTACK_SIGNAL_PROCESSOR = "haystack.signals.BaseSignalProcessor"

STATIC_URL = "/static/"
MEDIA_URL = "/media/"
# Placeholder thumbnails: the products have no images, and no file is written.
THUMBNAIL_DUMMY = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# Oscar sends order_placed after its own transaction: with ATOMIC_REQUESTS the
# checkout request is one transaction, holding the order and its event
# (check django_pjpixel.oscar.W001).
DATABASES = {"default": {**_DATABASES["default"], "ATOMIC_REQUESTS": True}}

# The shop: Norwegian kroner, guests may check out, and its order statuses (a shop
# taking bank transfers as well as cards; Oscar reads the pipeline once, at import).
OSCAR_DEFAULT_CURRENCY = "NOK"
OSCAR_ALLOW_ANON_CHECKOUT = True
OSCAR_INITIAL_ORDER_STATUS = "Pending"
OSCAR_ORDER_STATUS_PIPELINE = {
    "Pending": ("Paid", "Cancelled"),
    "Paid": ("Shipped", "Cancelled"),
    "Shipped": (),
    "Cancelled": (),
}
OSCAR_DASHBOARD_NAVIGATION = [  # from oscar.defaults
    *OSCAR_DASHBOARD_NAVIGATION,  # noqa: F405
    {
        "label": "Prisjakt",
        "icon": "fas fa-chart-line",
        "url_name": "pjpixel_dashboard:pjpixel-conversion-events",
    },
]

# Delivery at commit, in the test's own thread (README, "Testing your shop").
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = "memory://"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {
        "django_pjpixel": {"handlers": ["null"], "level": "DEBUG"},
        "oscar": {"handlers": ["null"], "level": "DEBUG"},
    },
}
