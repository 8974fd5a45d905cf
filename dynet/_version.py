"""This package's own release number (dynet.__version__ is the DyNet API level DyNet code expects)."""
__package_version__ = "0.1.0"
