"""A small host intranet that embeds Beacon's news feed under ``/news``.

It has what a real intranet has before Beacon arrives: its own sign-in, its own pages, its own
table (``host_users``, ``host_notes``) and its own security headers. Beacon joins it as a Flask
extension: ``intranet.init_app(app)``, and ``@intranet.employee_loader`` tells Beacon who is signed
in, so nobody signs in twice. Try it::

    flask --app examples.host_app intranet init-db              # Beacon's tables (intranet_*)
    flask --app examples.host_app intranet demo seed --if-empty  # a demo organisation
    flask --app examples.host_app host add-user someone@example.com a-password
    flask --app examples.host_app run                          # host on /, Beacon on /news/
    flask --app examples.host_app intranet scheduler           # digests: its own process

The settings below are for a developer machine; see ``create_app`` for what to change.
"""
from examples.host_app.app import create_app, intranet

__all__ = ["create_app", "intranet"]
