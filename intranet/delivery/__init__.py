"""Getting digests and alerts to people, one module per step, imports pointing one way:

``timing`` (learned send times) and ``history`` (read-time counts) feed ``planning`` (digest
slots ahead of time); ``alerts`` gives must-reads and as-it-happens posts slots of their own;
``enqueue`` turns due slots into outbox messages; ``content`` composes what a slot says;
``rendering`` turns that into email, Teams card and in-app forms (and signs the unsubscribe
link); ``sending`` is the outbox that sends each message once through ``channels``.
"""
