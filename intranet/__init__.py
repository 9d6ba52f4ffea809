"""Beacon: a personalized intranet communications plugin for Flask.

Plug it into a host app with ``Intranet().init_app(app)``, or run it standalone with
``create_app()`` (see ``app.py``).
"""
from intranet.extension import Intranet
from intranet.factory import create_app

__all__ = ["Intranet", "create_app"]
