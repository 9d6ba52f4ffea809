"""Engagement: what people read and when (events.py: ingest and import; demo_history.py: demo data)."""
