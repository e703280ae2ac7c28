"""Load the scripts in localstack/ as modules, for tests.

localstack/ is a folder of scripts, not a package: a package of that name
would shadow LocalStack itself. Each script is loaded by path once, as
``ls_<name>``, so unit and end-to-end tests share one module object.
"""

import importlib.util
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "localstack"


def load_script(name: str):
    module_name = f"ls_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            module_name, SCRIPTS / f"{name}.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[module_name]
