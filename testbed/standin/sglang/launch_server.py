"""`python3 -m sglang.launch_server ...` in the engine-standin image: the stand-in, never SGLang."""

import sys

from llmops_standin.main import sglang_main

if __name__ == "__main__":
    sys.exit(sglang_main())
