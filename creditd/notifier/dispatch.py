"""The notifier's channels as one: the configured ones (SMS through Kannel, email over SMTP, a
webhook), or, when none is, the console (each notice written to the log). A failure a channel did
not classify (our bug, or a library's) becomes a refusal, so that one notice is dead-lettered with
its reason and the others go on."""

from __future__ import annotations

import logging

from creditd.config.fronts import NotificationSettings
from creditd.core.notices import NoticeEvent as Event
from creditd.notifier.channels import ChannelError, EmailChannel, SmsChannel, WebhookChannel
from creditd.notifier.templates import Notice
from creditd.store.replies import AccountRecord

log = logging.getLogger(__name__)
CONSOLE = "console"


class Channels:
    def __init__(self, config: NotificationSettings) -> None:
        configured = {"sms": config.sms.url, "email": config.email.host, "webhook": config.webhook.url}
        self.names = tuple(name for name, where in configured.items() if where) or (CONSOLE,)
        self.sms = SmsChannel(config.sms)
        self.email = EmailChannel(config.email)
        self.webhook = WebhookChannel(config.webhook)

    async def close(self) -> None:
        await self.sms.close()
        await self.email.close()
        await self.webhook.close()

    async def send(self, notice_id: str, channel: str, event: Event, card: AccountRecord, notice: Notice) -> None:
        """Sends on `channel`; raises ChannelError (retryable or not) when it could not."""
        try:
            await self._send(notice_id, channel, event, card, notice)
        except ChannelError:
            raise
        except Exception as error:
            log.exception("notifier: %s notice %s failed unexpectedly", channel, event.id)
            raise ChannelError(f"{channel}: {type(error).__name__}: {error}", retryable=False) from None

    async def _send(self, notice_id: str, channel: str, event: Event, card: AccountRecord, notice: Notice) -> None:
        if self.names == (CONSOLE,):
            log.info(
                "console notice %s to %s (%s): %s | %s",
                notice_id,
                card.account_id,
                channel,
                notice.subject,
                notice.text,
            )
            return
        if channel == "sms":
            await self.sms.send(card.contact_phone or card.account_id, notice, notice_id)
        elif channel == "email":
            await self.email.send(card.contact_email, notice, notice_id)
        else:
            payload = {
                "id": notice_id,
                "kind": event.kind,
                "account_id": card.account_id,
                "time_ms": event.time_ms,
                "language": card.preferences.language,
                "subject": notice.subject,
                "text": notice.text,
            }
            await self.webhook.send(payload, notice_id)
