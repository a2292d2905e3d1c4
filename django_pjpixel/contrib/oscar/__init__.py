"""The django-oscar adapter: ``INSTALLED_APPS += ["django_pjpixel.contrib.oscar"]``.

Listed after ``django_pjpixel``, it attaches the visitor's click to the order
number before payment (Oscar's ``pre_payment``), reports the orders Oscar
places (``order_placed``) or, for shops paid later, those reaching a "paid"
status (``order_status_changed``), hands cancelled orders to
``receivers.order_cancelled``, checks Oscar's settings, and adds a page to
Oscar's dashboard.
"""
