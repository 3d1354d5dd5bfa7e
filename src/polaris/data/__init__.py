"""Problems: one normalised record, loaders for the formats people have, the built-in task."""

from polaris.data.problem import INSTRUCTION_SUFFIX, DataError, GroundTruth, Problem, build_messages

__all__ = ["INSTRUCTION_SUFFIX", "DataError", "GroundTruth", "Problem", "build_messages"]
