"""Local tooling: the Docker-free runner, the Secrets Manager emulator and throwaway database servers.

Not part of the Lambda layer: it carries moto and test tooling, which must never ship.
"""
