"""Integrations with other frameworks (``celeriac.contrib.django``)."""
