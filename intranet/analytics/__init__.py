"""Engagement analytics for comms managers and admins, aggregate-only and private by design.

``privacy`` is the minimum-group rule every answer passes through; ``rollups`` keeps the
aggregate tables current as events arrive; ``queries`` answers the dashboards from them.
"""
