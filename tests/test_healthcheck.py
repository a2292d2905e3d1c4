"""``healthcheck``: delivery health as a django-health-check check, in whichever line is installed.

The suite's settings install ``health_check``; the Django 4.2 environment gets
django-health-check 3.x (a registry the app fills), newer Djangos 4.x (a view
that names its checks).
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import path
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView

from django_pjpixel.healthcheck import Base, DeliveryHealthCheck, register
from tests.helpers import complete_sync

DOTTED = "django_pjpixel.healthcheck.DeliveryHealthCheck"


@pytest.mark.django_db
@pytest.mark.usefixtures("installed_long_ago")
def test_the_check_fails_exactly_when_delivery_is_unhealthy() -> None:
    check = DeliveryHealthCheck()
    assert isinstance(check, Base)
    with pytest.raises(ServiceUnavailable, match="never been synced completely"):
        check.check_status()
    complete_sync()
    check.check_status()


@pytest.mark.django_db
def test_a_new_install_passes_before_its_first_sync() -> None:
    DeliveryHealthCheck().check_status()


def test_it_is_registered_or_can_be_named() -> None:
    try:
        from health_check.plugins import plugin_dir
    except ImportError:  # 4.x: no registry, the view takes the dotted path
        view = HealthCheckView(checks=[DOTTED])
        assert [type(check) for check in view.get_checks()] == [DeliveryHealthCheck]
        register()  # a no-op there
    else:  # 3.x: registered by the app's ready()
        assert DeliveryHealthCheck in [plugin for plugin, _ in plugin_dir._registry]


@pytest.mark.django_db(transaction=True)
@pytest.mark.urls(__name__)
@pytest.mark.usefixtures("installed_long_ago")
def test_the_package_view_reports_it(client: Client) -> None:
    response = client.get("/ht/?format=json")
    assert response.status_code == 500
    [(name, status)] = response.json().items()
    assert "DeliveryHealthCheck" in name
    assert "never been synced completely" in status
    complete_sync()
    response = client.get("/ht/?format=json")
    assert response.status_code == 200
    assert list(response.json().values()) == ["OK"]


urlpatterns = [path("ht/", HealthCheckView.as_view(checks=[DOTTED]))]
