"""The language of each request, and Beacon's translation functions for pages and messages.

Beacon's strings live in its own catalog (domain ``beacon``, :mod:`intranet.languages`), and the
language of a Beacon page is decided here, whatever the host app does with its own pages:

1. the language the signed-in person chose in their preferences;
2. else their directory language (``Employee.language``), when Beacon speaks it;
3. else the browser's ``Accept-Language`` (signed-out pages, or a language Beacon lacks);
4. else English.

Flask-Babel is set up on the app only when the host has not set it up already: a host's own
``Babel`` (``app.extensions["babel"]``), its locale selector, its domain and its template
functions are left alone. Beacon's pages get ``gettext``/``ngettext`` (and so ``_`` and
``{% trans %}``) bound to Beacon's catalog and language through its blueprints' template context,
so they speak the viewer's language inside any host.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Flask, g, has_app_context, has_request_context, request, session as flask_session
from flask_babel import Babel, LazyString

from intranet import languages, reasons
from intranet.errors import IntranetError
from intranet.models import Preference
from intranet.web.context import current_employee_or_none, session


def chosen_language(employee_pk: int) -> str | None:
    """The language a person chose in their preferences (None: follow the directory)."""
    row = session().get(Preference, employee_pk)
    return row.language if row is not None else None


def _chosen_language_now(employee_pk: int) -> str | None:
    """:func:`chosen_language`, as the session lookup read it with the session row when it can.

    One query less on every page: the lookup joins the person's preferences. A language changed
    during this request (:func:`refresh`) is read again from the database.
    """
    known = getattr(flask_session, "owner_language", None)
    if known is not None and known[0] == employee_pk and not g.get("beacon_language_changed"):
        return known[1]  # type: ignore[no-any-return]
    return chosen_language(employee_pk)


def locale() -> str:
    """The language of this request's Beacon page (see the module's docstring for the order)."""
    forced = g.get("beacon_forced_locale") if has_app_context() else None
    if forced:
        return forced  # type: ignore[no-any-return]
    if not has_request_context():
        return languages.DEFAULT
    if "beacon_locale" not in g:
        employee = current_employee_or_none()
        language = languages.choose(_chosen_language_now(employee.id), employee.language) if employee else None
        g.beacon_locale = (language or request.accept_languages.best_match(languages.SUPPORTED)
                           or languages.DEFAULT)
    return g.beacon_locale  # type: ignore[no-any-return]


def error_locale() -> str:
    """The language to word an error in: :func:`locale`, unless finding the reader is what failed.

    A refused embed token or a database that went away fails again when the person is looked up,
    so those errors follow the browser's ``Accept-Language`` instead.
    """
    if has_request_context() and "beacon_locale" not in g and not g.get("beacon_forced_locale") \
            and g.get("intranet_db_unavailable"):
        return _browser_locale()
    try:
        return locale()
    except Exception:  # noqa: BLE001 (whatever failed is being reported already)
        return _browser_locale()


def _browser_locale() -> str:
    return request.accept_languages.best_match(languages.SUPPORTED) or languages.DEFAULT


def error_message(exc: IntranetError) -> str:
    """*exc*'s message in the language of this request (see :func:`error_locale`)."""
    return exc.message_in(error_locale())


def refresh() -> None:
    """Forget this request's language (after the person changed it, so the next message says it anew)."""
    g.pop("beacon_locale", None)
    g.beacon_language_changed = True


@contextlib.contextmanager
def using(language: str | None) -> Iterator[None]:
    """Speak *language* inside the block (a message for someone else, rendered during a request)."""
    before = g.get("beacon_forced_locale")
    g.beacon_forced_locale = languages.supported(language) or languages.DEFAULT
    try:
        yield
    finally:
        g.beacon_forced_locale = before


def gettext(message: str, /, **values: Any) -> str:
    """*message* in this request's language, ``%(name)s`` placeholders filled from *values*."""
    return languages.translate(locale(), message, **values)


def ngettext(singular: str, plural: str, num: int, /, **values: Any) -> str:
    """The form of a message for *num* in this request's language (``%(num)d`` is filled)."""
    return languages.ntranslate(locale(), singular, plural, num, **values)


def lazy_gettext(message: str, **values: Any) -> LazyString:
    """*message*, translated each time it is shown (for labels declared at import time)."""
    return LazyString(gettext, message, **values)


_ = gettext


def reason_words(why: Iterable[reasons.Reason]) -> list[str]:
    """A feed item's reasons in this request's language."""
    return reasons.words(why, locale())


_PAGE_CALLABLES = languages.template_functions(lambda: locale())


def template_context() -> dict[str, Any]:
    """What Beacon's pages need to speak the viewer's language (added by Beacon's blueprints)."""
    return _PAGE_CALLABLES



def init_app(app: Flask) -> None:
    """Flask-Babel on *app*, unless the host set it up; Jinja's i18n extension; ``beacon_locale()`` for ``<html lang>``."""
    if "babel" not in app.extensions:
        # Beacon owns Babel here, so Flask-Babel's own functions (and its template globals, which
        # macros imported without context see) speak Beacon's catalog in Beacon's language.
        Babel(app, locale_selector=locale, default_domain=languages.DOMAIN,
              default_translation_directories=str(languages.CATALOGS))
    if "jinja2.ext.InternationalizationExtension" not in app.jinja_env.extensions:
        # A host's Babel set up without Jinja: `{% trans %}` still needs the extension, in newstyle.
        app.jinja_env.add_extension("jinja2.ext.i18n")
        app.jinja_env.newstyle_gettext = True  # type: ignore[attr-defined]
    app.add_template_global(locale, "beacon_locale")
    app.add_template_global(languages.name, "beacon_language_name")
    app.add_template_global(reason_words, "beacon_reasons")

