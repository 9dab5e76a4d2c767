"""The payments front (`creditd payments serve`): HTTP for payment agents and terminals (check, pay,
cancel; signed per agent) and for PromptPay QR (intents, their QR, the provider's webhook), on the
rules of creditd/payments/."""
