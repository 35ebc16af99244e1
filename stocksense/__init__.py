"""StockSense composition root: the ``stocksense`` command line and local service runner."""
