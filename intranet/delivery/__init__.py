"""Getting digests and notices to people: when to send (``timing``), what to send and how."""
