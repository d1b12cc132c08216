"""Tariffs, the preliminary charge and (later) the outbox relay to billing.

Imports only ``gateway.domain``.
"""
