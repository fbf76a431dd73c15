"""Stand-in `sglang` package of the test bed's engine-standin image: not SGLang (see llmops_standin)."""

__version__ = "llmops-engine-standin"
