"""Stand-in `ray` package of the engine-standin image: init()/nodes() over the stand-in Ray head's node count
(llmops_standin.ray_cli), what serving.ray_leader_script asks. Not Ray."""

from llmops_standin import ray_cli

__version__ = "llmops-engine-standin"
_state = None


def init(address=None, **_options):
    global _state
    _state = ray_cli.read_state()
    if _state is None:
        raise ConnectionError("Could not find any running Ray instance (llmops-engine-standin: no head here)")


def nodes():
    if _state is None:
        raise RuntimeError("Ray has not been started yet. You can start Ray with 'ray.init()'.")
    return ray_cli.read_state()["nodes"]
