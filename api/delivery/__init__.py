"""The delivery pipeline: every way a message leaves the server, with one set of guarantees.

- a reply is stored with its QUEUED deliveries in one write (``api/store/deliveries``);
- :mod:`api.delivery.worker` claims due jobs with a lease, sends a conversation's
  replies in order and different conversations concurrently, and records each outcome;
- a transport (:mod:`api.delivery.channel` for the providers, :mod:`api.channels.email`
  for the email fallback) turns one message into one outcome;
- retry timing and status progression are domain rules (:mod:`domain.delivery`).
"""
