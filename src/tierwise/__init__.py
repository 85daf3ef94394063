"""Tierwise: customer tiering and classification (客户分级分类管理)."""

__version__ = "0.1.0"
