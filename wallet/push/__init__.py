"""Clients for the wallet platforms' servers: APNs and the Google Wallet REST API.

They know HTTP and the platforms' protocols but nothing about the database; the
outbox worker in :mod:`wallet.services` decides what to send and records results.
"""
