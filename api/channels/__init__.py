"""One module per provider, each answering three questions and nothing else.

- **verify**: is this webhook request really from the provider (signature, handshake)?
- **parse**: which customer messages, delivery statuses and watermarks does it carry?
- **send**: turn one :class:`domain.delivery.Outgoing` into the provider's request and
  return one :data:`domain.delivery.Outcome` (sent with the provider's id, retry, failed).

What the providers share (who the customer is, de-duplication, status progression,
windows, ordering, retries, leases) is decided in ``domain/`` and ``api/delivery/``,
never here. :mod:`api.channels.http` is the one place an HTTP answer becomes an outcome.

Beside the providers: :mod:`api.channels.credentials` opens a channel's encrypted
provider credentials, and :mod:`api.channels.urls` says where each provider calls us.
"""
