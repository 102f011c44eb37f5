"""Pure validation logic: statistics, perturbations, task adapters, message schema.

Nothing here touches the network, a camera or files of its own, so every rule
can be tested on plain arrays and shared by the agent and the collector.
"""
