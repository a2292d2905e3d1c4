"""A django-oscar 4.2 shop, set up as Oscar documents it, with django-pjpixel added.

Oscar's part follows its "Building your own shop" guide: its apps and their
dependencies, its middleware, context processors and authentication backend,
haystack's simple backend and ``from oscar.defaults import *``. django-pjpixel's
part is what the docs' "django-oscar" page says: the two apps, the
middleware, ``PJPIXEL``, ``ATOMIC_REQUESTS``, the dashboard entry. What Oscar
adds to Django's settings is added to the main suite's (``tests/settings.py``).

Run with ``pytest tests/oscar --ds=tests.oscar.settings --no-migrations`` (``make
test`` does).
"""

from __future__ import annotations

from oscar.defaults import *  # noqa: F403  # Oscar's documented way to get its defaults

from tests import settings as main_suite

# The main suite's database (PostgreSQL, else SQLite), credentials and sessions.
PASSWORD_HASHERS = main_suite.PASSWORD_HASHERS
PJPIXEL = main_suite.PJPIXEL
POSTGRES_UNAVAILABLE = main_suite.POSTGRES_UNAVAILABLE  # read by tests/services.py
SECRET_KEY = main_suite.SECRET_KEY
SESSION_COOKIE_AGE = main_suite.SESSION_COOKIE_AGE

DEBUG = False
USE_TZ = True
TIME_ZONE = "Europe/Oslo"
LANGUAGE_CODE = "en"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.oscar.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"  # as Oscar documents it
SITE_ID = 1

INSTALLED_APPS = [
    # Django's apps as in the main suite, then the two more Oscar needs.
    *(app for app in main_suite.INSTALLED_APPS if app.startswith("django.contrib.")),
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

# The main suite's (Django's, PjclidMiddleware right after SessionMiddleware), then
# the two Oscar adds.
MIDDLEWARE = [
    *main_suite.MIDDLEWARE,
    "oscar.apps.basket.middleware.BasketMiddleware",
    "django.contrib.flatpages.middleware.FlatpageFallbackMiddleware",
]

AUTHENTICATION_BACKENDS = (
    "oscar.apps.customer.auth_backends.EmailBackend",
    "django.contrib.auth.backends.ModelBackend",
)

# The main suite's templates, with the context processors Oscar's templates need.
TEMPLATES = [
    {
        **main_suite.TEMPLATES[0],
        "OPTIONS": {
            "context_processors": [
                *main_suite.TEMPLATES[0]["OPTIONS"]["context_processors"],
                "django.template.context_processors.i18n",
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

# Oscar sends order_placed after its own transaction: with ATOMIC_REQUESTS the
# checkout request is one transaction, holding the order and its event
# (check django_pjpixel.oscar.W001).
DATABASES = {"default": {**main_suite.DATABASES["default"], "ATOMIC_REQUESTS": True}}

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

# Delivery at commit, in the test's own thread (the docs, "Test your shop").
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
