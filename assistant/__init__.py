"""Trợ lý an toàn trực tuyến cho trẻ em: the Vietnamese child online-safety assistant."""

__version__ = "0.1.0"
