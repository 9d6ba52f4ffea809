"""Journeys: posts released to one person at offsets from an event in their directory record.

A comms manager defines a journey (:mod:`.definitions`): a trigger (``hire``, ``department_move``,
``country_move``, ``manager_promotion``) and steps, each a post released *offset_days* after the
event, optionally skipped when a named earlier step was not read, and, for must-reads, followed
by a reminder when still unacknowledged after some days.

The directory sync overwrites employees in place and records no history of moves, so
:mod:`.enrolment` keeps the few values it compares (:class:`~intranet.models.JourneyWatch`) and
treats a difference as the event. Enrolling is idempotent: one enrolment per (journey, person,
event key) by a unique constraint, and the watch row moves in the same transaction.

**The organisation's rules** are settings (:class:`intranet.settings.JourneySettings`):
``INTRANET_JOURNEY_MANAGER_LEVEL`` (levels from it up are people managers; default 6),
``INTRANET_JOURNEY_RELEASE_HOUR`` (the local hour steps go out; default 9) and
``INTRANET_JOURNEY_CATCH_UP_DAYS`` (default 2, below). Services take them as ``rules=``.

**No flood of old steps.** A step already due more than ``INTRANET_JOURNEY_CATCH_UP_DAYS`` days
before the enrolment is recorded as skipped (``late``), never sent; a person for whom every step
is that late is not enrolled at all (an installation with years of hire dates enrols nobody). A
step due within the catch-up window still goes out, so a sync that ran a day late still welcomes.

:mod:`.releases` moves due steps from ``pending`` to ``released`` or ``skipped`` with a
compare-and-set update (a second scheduler changes nothing); a paused journey releases nothing
until resumed (its due steps then go out, the catch-up rule applying from the resume). A released
step's post becomes visible to that person through the one targeting rule
(:func:`intranet.targeting.released_filter`), so feed, post page, API, search and digests follow.

:mod:`.reports` previews a journey as a timeline for a sample person and measures it: per step,
completion (released of enrolled) and read rate, shown only for groups of at least
``INTRANET_ANALYTICS_MIN_GROUP`` people (:mod:`intranet.analytics.privacy`).
"""
