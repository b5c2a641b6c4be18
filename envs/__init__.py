"""Environments: the AgentEnv contract, the registry and the built-in envs."""
