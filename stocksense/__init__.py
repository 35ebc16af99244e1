"""StockSense composition root: the ``stocksense`` command line and local service runner."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stocksense")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
