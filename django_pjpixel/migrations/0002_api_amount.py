from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_pjpixel", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversionevent",
            name="api_amount",
            field=models.BigIntegerField(blank=True, null=True, verbose_name="amount sent"),
        ),
    ]
