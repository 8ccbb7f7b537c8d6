"""Integrators' webhooks: a cursor per webhook over the event log, each event's payload the
result of the webhook's own subscription document, signed as Standard Webhooks says.

- :mod:`api.webhooks.follower`: one loop per instance, claiming webhooks with a lease and
  delivering their events in log order, with retries, disabling and notifications.
- :mod:`api.webhooks.execution`: the payload of one event (the schema's subscription run
  for it), and the checks a new document passes.
- :mod:`api.webhooks.signing`: the ``webhook-*`` headers, and the secrets sealed at rest.
- :mod:`api.webhooks.address` / :mod:`api.webhooks.sender`: where a request may go, and
  the request itself (no redirects, bounded answer, timeout).

The rules (who may manage webhooks, the retry schedule, URL syntax) are in
:mod:`domain.webhooks` and :mod:`domain.usecases.webhooks`; storage in
:mod:`api.store.webhooks`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api.secrets import SecretBox
from api.store.webhooks import SealedSecret
from api.webhooks.address import refusal_at_creation
from api.webhooks.execution import Execution
from api.webhooks.follower import WebhookFollower
from api.webhooks.signing import WebhookSecrets
from domain.webhooks import Webhook, WebhookDelivery


class WebhookService:
    """What the schema's webhook mutations need: the checks a URL and a document pass (the
    domain's ``Checks``), the secrets' sealer, and this process's follower, when it runs."""

    def __init__(self, services: Any, schema: Callable[[], Any], box: SecretBox) -> None:
        self.services = services
        self._schema = schema
        self._execution: Execution | None = None
        self.secrets = WebhookSecrets(box)
        self.follower: WebhookFollower | None = None

    @property
    def execution(self) -> Execution:
        """Built on first use: the schema is the application's, made after the services."""
        if self._execution is None:
            self._execution = Execution(self.services, self._schema())
        return self._execution

    @property
    def https_only(self) -> bool:
        return bool(self.services.settings.production)

    async def url_refusal(self, url: str) -> str | None:
        return await refusal_at_creation(url, self.services.settings.webhook_allow_private)

    async def query_refusal(self, query: str) -> str | None:
        return await self.execution.refusal(query)

    def start_follower(self) -> WebhookFollower:
        self.follower = WebhookFollower(self.services, self.execution, self.secrets)
        self.follower.start()
        return self.follower

    async def ping(self, webhook: Webhook, sealed: tuple[SealedSecret, ...]) -> WebhookDelivery:
        """A test request, sent from this process whether or not its follower runs."""
        follower = self.follower or WebhookFollower(self.services, self.execution, self.secrets)
        return await follower.ping(webhook, sealed)

    def changed(self) -> None:
        """A webhook was created or changed here: this process's follower looks at once."""
        if self.follower is not None:
            self.follower.wake()
