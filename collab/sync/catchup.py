"""Answers to sync step 1 (what a client lacks): bounded per connection, shared between them."""

from __future__ import annotations

# y-websocket asks once per connection (its periodic resync is off unless a page turns it on);
# a tool may ask again now and then. A burst of this many, then one per SYNC_REQUEST_EVERY_S:
# each answer can be the whole document, so a 4-byte request must not be free to repeat.
SYNC_REQUEST_BURST = 3
SYNC_REQUEST_EVERY_S = 10.0
