"""Notifications: events told to clients and staff, in-app, by email and by signed webhook.

``events`` (the event types and which are regulatory) and ``explain`` (the plain-language
messages) are pure; ``services`` writes the outbox, ``delivery`` sends it, ``hooks``
connects the rest of the platform, ``tasks`` runs the sending on Celery.
"""
