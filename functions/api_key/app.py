"""Third-party API key rotation (Datadog, SendGrid, Twilio, Cloudflare, generic HTTP).

The provider is named by each rotated secret's ``provider`` key. No database driver is shipped or imported.
"""

from __future__ import annotations

from rotation_core.handler import api_key_handler

lambda_handler = api_key_handler()
