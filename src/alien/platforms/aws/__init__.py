"""AWS building blocks: SigV4 verification and re-signing, the endpoint allowlist, short-lived
credentials for a deployment's management role, and the re-signing upstream used by remote
debugging.
"""
