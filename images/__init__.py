"""Container images: Dockerfiles (bot, dispatcher) and the Pulumi component that builds them."""
