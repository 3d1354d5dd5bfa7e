"""POLARIS: post-training reasoning models with reinforcement learning.

Importing the package is cheap on purpose (no torch, no transformers): the verifier's worker
processes and the CLI's ``--help`` import it.
"""

__version__ = "0.1.0"
