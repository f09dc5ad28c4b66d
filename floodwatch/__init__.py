"""floodwatch: flood and tide alerts for Cà Mau province."""

__version__ = "0.1.0"
