from __future__ import annotations

from decimal import Decimal

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

PRODUCTS = [
    ("Espresso machine", Decimal("3990.00")),
    ("Coffee grinder", Decimal("1234.00")),
    ("Milk jug", Decimal("199.00")),
    ("Beans, 1 kg", Decimal("289.00")),
]


def add_products(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    Product = apps.get_model("shop", "Product")
    for name, price in PRODUCTS:
        Product.objects.get_or_create(name=name, defaults={"price": price, "currency": "SEK"})


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]

    operations = [migrations.RunPython(add_products, migrations.RunPython.noop)]
