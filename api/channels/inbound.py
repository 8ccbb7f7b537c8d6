"""What a provider's webhook call carries, once parsed: customer messages, statuses, watermarks."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.delivery import StatusReport, Watermark
from domain.usecases.inbound import InboundMessage


@dataclass(frozen=True, slots=True)
class Parsed:
    """Everything one webhook request reported, in the order the provider listed it.

    Attachments of ``messages`` that still live at the provider carry a ``media_ref``
    (and an empty ``url``): the pipeline copies them into the file store after the
    webhook has been answered.
    """

    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusReport] = field(default_factory=list)
    watermarks: list[Watermark] = field(default_factory=list)
    follows: list[Follow] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Follow:
    """A customer followed (True) or unfollowed (False) the business account: LINE
    ``follow``/``unfollow``, WeChat ``subscribe``/``unsubscribe``."""

    external_id: str
    following: bool


@dataclass(frozen=True, slots=True)
class Media:
    """A file a customer sent, fetched from the provider (see ``Attachment.media_ref``) and
    ready for the file store: its bytes, the provider's media type, and a name when known."""

    data: bytes
    mime_type: str
    name: str | None = None
