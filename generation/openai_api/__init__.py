"""The OpenAI-compatible API (/v1/): the official SDKs and everyday tools against the gateway."""
