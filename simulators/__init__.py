"""Simulators: a virtual warehouse publishing through the real pipeline, and local stand-ins for
the external robots (DingTalk, WeCom, webhooks) that enforce the real contracts."""
