"""Channel adapters: translate a provider's payload to an ``InboundMessage`` and render the
reply in the provider's medium. They never touch storage or billing; they get ``on_inbound``."""
