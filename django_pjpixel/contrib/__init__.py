"""Ready adapters to frameworks shops build on; each is a Django app of its own."""
