"""Signals other apps connect to, so accounts never imports them."""

from __future__ import annotations

from django.dispatch import Signal

# Sent inside the transaction that deletes a user, with tx= and user_id=: receivers delete
# the rows they own in that same transaction. The write may be re-run, so receivers touch
# only the database (files wait for user_deleted).
user_deleting = Signal()

# Sent after that transaction committed, with user_id=, off the event loop: receivers
# remove what lives outside the database (stored media).
user_deleted = Signal()
