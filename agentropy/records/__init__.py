"""The record formats at the bottom of the layers: the episode record and the JSON-lines log.

Everything above (envs' callers, the collector, the trainer, inspection) writes and reads runs
through these two modules; they import nothing else of agentropy.
"""
