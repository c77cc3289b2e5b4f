"""The customer decides: consent, channel preference, frequency caps, quiet hours, the WhatsApp window."""
