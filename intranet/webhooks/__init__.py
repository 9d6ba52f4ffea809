"""Outgoing webhooks: a host hears when a post is published, a must-read acknowledged, a digest sent.

One module per step:

* :mod:`.events`: what each event says, recorded in the same transaction as the change that
  causes it (a transactional outbox: nothing is lost if the process dies after the commit, and
  nothing is sent for a change that was rolled back);
* :mod:`.endpoints`: the endpoints admins register (URL, events, a signing secret shown once);
* :mod:`.sealing`: the secrets' encryption at rest, when a key is configured (the only user of
  ``cryptography``);
* :mod:`.signing`: Standard Webhooks signatures (``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature``), so hosts verify with an existing library;
* :mod:`.network`: where deliveries may go (http(s) only; no private addresses in production);
* :mod:`.sender`: the scheduled sender: claims deliveries under a lease (the mail outbox's claim,
  ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), posts them, retries with backoff and gives up.
"""
