"""llmops-engine-standin: runs the exact engine command lines our manifests give, without the engine."""
