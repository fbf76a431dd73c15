"""Offline stand-in for ansible-test's pip bootstrap script.

ansible-test --venv creates virtual environments without pip and downloads get-pip.py from a host
our machines cannot reach. It runs the script found at ~/.ansible/test/cache/get_pip_<version>.py
instead, when present, with the arguments get-pip.py takes (pip options and package specs).
This does the same from PyPI: seed pip with the stdlib's ensurepip, then install what was asked.
"""

import subprocess
import sys

# get-pip.py's own switches; ensurepip seeds no setuptools/wheel anyway on Python >= 3.12.
OWN_SWITCHES = {"--no-setuptools", "--no-wheel"}
args = [arg for arg in sys.argv[1:] if arg not in OWN_SWITCHES]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet"] + args)
