"""Command groups of `protocol-gateway`, each a module with `register(commands, common)`."""
